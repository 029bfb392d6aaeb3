package wire

import (
	"bytes"
	"testing"
)

// FuzzReadFrame: any bytes either decode into frames that encode back to
// the same bytes, or give an error; never a panic.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range []Frame{
		{Type: FrameAuth, Share: filled(ShareSize, 1), Confirmation: filled(ConfirmationSize, 2)},
		{Type: FrameWelcome, Confirmation: filled(ConfirmationSize, 3), Session: filled(SessionSize, 4)},
		{Type: FrameOpen, Ticket: filled(TicketSize, 5)},
		{Type: FrameClose, Code: CodeEntryRemoved, Reason: "removed"},
		{Type: FrameAlive},
	} {
		b, _ := fr.Append(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if fr.Type < FrameAuth || fr.Type > FrameClose {
				continue
			}
			b, err := fr.Append(nil)
			if err != nil {
				t.Fatalf("decoded frame %+v does not encode: %v", fr, err)
			}
			again, err := ReadFrame(bytes.NewReader(b))
			if err != nil || again.Type != fr.Type {
				t.Fatalf("re-encoded frame does not decode: %+v, %v", again, err)
			}
		}
	})
}

// FuzzParseHello: any header value parses or errors; what parses encodes
// back to a value that parses the same.
func FuzzParseHello(f *testing.F) {
	f.Add(Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)}.String())
	f.Add(Hello{Version: Version, Role: RoleBack, Nonce: filled(NonceSize, 1), Session: filled(SessionSize, 2), Ticket: filled(TicketSize, 3), Proof: filled(ProofSize, 4)}.String())
	f.Add("v=3; role=control; nonce=x; future=1")
	f.Fuzz(func(t *testing.T, value string) {
		h, err := ParseHello(value)
		if err != nil {
			return
		}
		again, err := ParseHello(h.String())
		if err != nil || again.String() != h.String() {
			t.Fatalf("%q parsed as %q, which parses as %q, %v", value, h, again, err)
		}
	})
}

// FuzzParseChallenge: never panics.
func FuzzParseChallenge(f *testing.F) {
	f.Add(Challenge{Version: Version, Nonce: filled(NonceSize, 1), Bound: true, Share: filled(ShareSize, 2)}.String())
	f.Fuzz(func(t *testing.T, value string) {
		_, _ = ParseChallenge(value)
	})
}

// FuzzOpener: any bytes read as tagged frames either fail or are frames
// sealed with the session key; never a panic, and a frame that did not
// come from the sealer never passes.
func FuzzOpener(f *testing.F) {
	key := SessionKey(filled(SessionKeySize, 7))
	s := NewSealer(key, true)
	var seed []byte
	for _, fr := range []Frame{{Type: FrameAlive}, {Type: FrameOpen, Ticket: filled(TicketSize, 1)}, {Type: FrameClose, Code: CodeShuttingDown}} {
		seed, _ = s.Append(seed, fr)
	}
	f.Add(seed)
	f.Add([]byte{byte(FrameAlive), 0, TagSize})
	f.Fuzz(func(t *testing.T, data []byte) {
		o := NewOpener(key, true)
		r := bytes.NewReader(data)
		for {
			fr, err := o.ReadFrame(r)
			if err != nil {
				return
			}
			// Only a prefix of the seed can pass the tags.
			if !bytes.HasPrefix(seed, data[:len(data)-r.Len()]) {
				t.Fatalf("a frame not made by the sealer passed: %+v", fr)
			}
		}
	})
}
