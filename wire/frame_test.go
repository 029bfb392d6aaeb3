package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: FrameAuth, Share: filled(ShareSize, 1), Confirmation: filled(ConfirmationSize, 2)},
		{Type: FrameAuth, Share: filled(ShareSize, 1), Confirmation: filled(ConfirmationSize, 2), ResumeProof: filled(ProofSize, 2)},
		{Type: FrameWelcome, Confirmation: filled(ConfirmationSize, 3), Session: filled(SessionSize, 4), Alive: 20 * time.Second, Dead: time.Minute},
		{Type: FrameRefuse, Code: CodeWrongPassword, Reason: "wrong password"},
		{Type: FrameAlive},
		{Type: FrameOpen, Ticket: filled(TicketSize, 5), Kind: KindRDP},
		{Type: FrameClose, Code: CodeEntryRemoved, Reason: "removed"},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range frames {
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read %+v, want %+v", got, want)
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	cases := map[string][]byte{
		"short auth":        {byte(FrameAuth), 0, 1, 0},
		"long alive":        {byte(FrameAlive), 0, 1, 0},
		"empty close":       {byte(FrameClose), 0, 0},
		"truncated payload": {byte(FrameOpen), 0, 17, 1, 2},
	}
	for name, in := range cases {
		if _, err := ReadFrame(bytes.NewReader(in)); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
	unknown, err := ReadFrame(bytes.NewReader([]byte{99, 0, 2, 1, 2}))
	if err != nil || unknown.Type != 99 {
		t.Errorf("unknown frame type: %+v, %v; want it read and ignorable", unknown, err)
	}
	if _, err := (Frame{Type: 99}).Append(nil); !errors.Is(err, ErrFrame) {
		t.Errorf("encoding an unknown type: %v", err)
	}
	long, err := (Frame{Type: FrameClose, Reason: strings.Repeat("é", MaxReason)}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFrame(bytes.NewReader(long)); err != nil || len(f.Reason) > MaxReason || !utf8.ValidString(f.Reason) {
		t.Errorf("a long reason was not cut to %d bytes of UTF-8: %d bytes, %v", MaxReason, len(f.Reason), err)
	}
}

// TestFrameLengthCheckedFirst: a frame that announces more than its type
// allows is refused before its payload is read or allocated.
func TestFrameLengthCheckedFirst(t *testing.T) {
	for _, typ := range []FrameType{FrameAuth, FrameWelcome, FrameOpen, FrameAlive, FrameClose, 99} {
		r := &countingReader{r: bytes.NewReader(append([]byte{byte(typ), 0xff, 0xff}, make([]byte, 1<<16)...))}
		if _, err := ReadFrame(r); !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), "at most") {
			t.Errorf("type %d: %v, want a length refusal", typ, err)
		}
		if r.n > HeaderSize {
			t.Errorf("type %d: %d bytes read before the refusal", typ, r.n)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestSealedFrames: tagged frames read back in order; a forged, replayed,
// reordered or changed frame, or one tagged by the other side, is refused.
func TestSealedFrames(t *testing.T) {
	key := SessionKey(filled(SessionKeySize, 7))
	frames := []Frame{{Type: FrameOpen, Ticket: filled(TicketSize, 1)}, {Type: FrameAlive}, {Type: FrameClose, Code: CodeShuttingDown, Reason: "bye"}}
	seal := func(s *Sealer) [][]byte {
		var out [][]byte
		for _, f := range frames {
			b, err := s.Append(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	sealed := seal(NewSealer(key, false))
	o := NewOpener(key, false)
	for i, b := range sealed {
		got, err := o.ReadFrame(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(got, frames[i]) {
			t.Fatalf("frame %d: %+v, %v", i, got, err)
		}
	}
	tampered := append([]byte(nil), sealed[0]...)
	tampered[4] ^= 1
	forged, _ := Frame{Type: FrameOpen, Ticket: filled(TicketSize, 9)}.Append(nil)
	forged = append(forged, make([]byte, TagSize)...)
	forged[2] += TagSize
	for name, stream := range map[string][][]byte{
		"replayed":        {sealed[0], sealed[0]},
		"reordered":       {sealed[1], sealed[0]},
		"dropped":         {sealed[0], sealed[2]},
		"changed":         {tampered},
		"forged":          {forged},
		"other direction": seal(NewSealer(key, true)),
		"other session":   seal(NewSealer(SessionKey(filled(SessionKeySize, 8)), false)),
		"untagged":        {mustAppend(t, frames[1])},
	} {
		o := NewOpener(key, false)
		var err error
		for _, b := range stream {
			if _, err = o.ReadFrame(bytes.NewReader(b)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrFrameTag) && !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}

func mustAppend(t *testing.T, f Frame) []byte {
	t.Helper()
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrameTagsAreHMAC: each frame's tag is HMAC-SHA-256 under the frame
// key over the counter, the type and the payload, cut to TagSize, as
// crypto/hmac computes it: keys shorter and longer than a block, empty and
// long payloads, a run of frames.
func TestFrameTagsAreHMAC(t *testing.T) {
	for _, keySize := range []int{0, 1, 32, 63, 64, 65, 200} {
		key := filled(keySize, byte(keySize))
		tags := newFrameTags(key)
		for counter, size := range []int{0, 1, 40, 55, 56, 64, 119, 1000, 65535} {
			payload := filled(size, byte(size))
			typ := FrameType(counter + 1)
			mac := hmac.New(sha256.New, key)
			var hdr [9]byte
			binary.BigEndian.PutUint64(hdr[:8], uint64(counter))
			hdr[8] = byte(typ)
			mac.Write(hdr[:])
			mac.Write(payload)
			want := mac.Sum(nil)[:TagSize]
			if got := tags.next(typ, payload); !bytes.Equal(got[:], want) {
				t.Errorf("key of %d bytes, frame %d of %d bytes: tag %x, want %x", keySize, counter, size, got, want)
			}
		}
	}
}

// BenchmarkSealAlive is the cost of tagging one frame, which each
// registration pays for every ALIVE and OPEN it sends or reads.
func BenchmarkSealAlive(b *testing.B) {
	s := NewSealer(SessionKey(make([]byte, SessionKeySize)), true)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.Append(buf[:0], Frame{Type: FrameAlive})
	}
}
