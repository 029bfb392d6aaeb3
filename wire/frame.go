package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// FrameType is the first byte of a control frame.
type FrameType uint8

// Control frame types. A receiver ignores types it does not know, so that
// later versions can add frames.
const (
	FrameAuth    FrameType = 1 // agent: Share, Confirmation, then ResumeProof when resuming
	FrameWelcome FrameType = 2 // gateway: Confirmation, Session, alive interval, dead time
	FrameRefuse  FrameType = 3 // gateway: Code, Reason; the connection closes
	FrameAlive   FrameType = 4 // either: empty
	FrameOpen    FrameType = 5 // gateway: Ticket, Kind
	FrameClose   FrameType = 6 // either: Code, Reason; the connection closes
)

// Sizes of frames.
const (
	// TagSize is the size of the tag that ends every frame after WELCOME.
	TagSize = 16
	// MaxReason bounds the reason of a REFUSE or CLOSE, in bytes; longer
	// reasons are cut when they are encoded.
	MaxReason = 256
	// maxUnknownPayload bounds the payload of a frame type this side does
	// not know.
	maxUnknownPayload = 1024
	// HeaderSize is the size of a frame's header: a type byte and a
	// big-endian 16-bit payload length.
	HeaderSize  = 3
	welcomeSize = ConfirmationSize + SessionSize + 8
	authSize    = ShareSize + ConfirmationSize
)

// maxPayload is the largest payload, tag excluded, of each frame type: a
// longer frame is refused before anything is allocated for it.
func maxPayload(t FrameType) int {
	switch t {
	case FrameAuth:
		return authSize + ProofSize
	case FrameWelcome:
		return welcomeSize
	case FrameRefuse, FrameClose:
		return 1 + MaxReason
	case FrameAlive:
		return 0
	case FrameOpen:
		return TicketSize + 1
	}
	return maxUnknownPayload
}

// Kind says what a ticket opens or a stream carries.
type Kind uint8

// Kinds. An OPEN's ticket opens a multiplexed back connection (KindMux);
// each stream on it carries one web connection (KindHTTP) or one native
// RDP connection (KindRDP).
const (
	KindHTTP Kind = 0
	KindRDP  Kind = 1
	KindMux  Kind = 2
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindRDP:
		return "rdp"
	case KindMux:
		return "mux"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Frame is one control frame. Which fields are set depends on Type.
type Frame struct {
	Type         FrameType
	Share        []byte // Auth: the agent's CPace share Ya
	Confirmation []byte // Auth, Welcome: key confirmation tag
	ResumeProof  []byte // Auth, when resuming
	Session      []byte // Welcome
	Alive        time.Duration
	Dead         time.Duration // Welcome
	Ticket       []byte        // Open
	Kind         Kind          // Open
	Code         Code          // Refuse, Close
	Reason       string        // Refuse, Close
}

// ErrFrame reports a frame that does not follow the protocol.
var ErrFrame = errors.New("malformed frame")

// ErrFrameTag reports a frame whose tag is wrong: it was forged, replayed,
// reordered or changed on the way.
var ErrFrameTag = errors.New("control frame with a wrong tag")

// payload encodes the frame's payload.
func (f Frame) payload() ([]byte, error) {
	var p []byte
	switch f.Type {
	case FrameAuth:
		p = append(append(append(p, f.Share...), f.Confirmation...), f.ResumeProof...)
	case FrameWelcome:
		p = append(append(p, f.Confirmation...), f.Session...)
		p = binary.BigEndian.AppendUint32(p, uint32(f.Alive/time.Millisecond))
		p = binary.BigEndian.AppendUint32(p, uint32(f.Dead/time.Millisecond))
	case FrameOpen:
		p = append(append(p, f.Ticket...), byte(f.Kind))
	case FrameRefuse, FrameClose:
		p = append([]byte{byte(f.Code)}, truncateUTF8(f.Reason, MaxReason)...)
	case FrameAlive:
	default:
		return nil, fmt.Errorf("%w: cannot encode type %d", ErrFrame, f.Type)
	}
	if len(p) > maxPayload(f.Type) {
		return nil, fmt.Errorf("%w: type %d with a payload of %d bytes", ErrFrame, f.Type, len(p))
	}
	return p, nil
}

// Append encodes the frame, without a tag, onto b: the frames of the
// handshake.
func (f Frame) Append(b []byte) ([]byte, error) {
	p, err := f.payload()
	if err != nil {
		return b, err
	}
	return appendFrame(b, f.Type, p, nil), nil
}

func appendFrame(b []byte, t FrameType, payload, tag []byte) []byte {
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+len(tag)))
	return append(append(b, payload...), tag...)
}

// WriteFrame writes one frame of the handshake, without a tag.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := f.Append(make([]byte, 0, 128))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame of the handshake, without a tag. Frames of
// unknown types come back with only Type set, for the caller to ignore.
func ReadFrame(r io.Reader) (Frame, error) {
	t, p, err := readRaw(r, 0)
	if err != nil {
		return Frame{}, err
	}
	return DecodeFrame(t, p)
}

// readRaw reads a frame's type and payload, refusing a length above the
// type's maximum (plus extra, for a tag) before it allocates.
func readRaw(r io.Reader, extra int) (FrameType, []byte, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	return readPayload(hdr, r, extra)
}

// readPayload reads the payload of the frame whose header is hdr.
func readPayload(hdr [HeaderSize]byte, r io.Reader, extra int) (FrameType, []byte, error) {
	t, n := FrameType(hdr[0]), int(binary.BigEndian.Uint16(hdr[1:]))
	if n > maxPayload(t)+extra {
		return 0, nil, fmt.Errorf("%w: type %d announces %d payload bytes, at most %d allowed", ErrFrame, t, n, maxPayload(t)+extra)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return t, p, nil
}

// DecodeFrame decodes a payload of the given type.
func DecodeFrame(t FrameType, p []byte) (Frame, error) {
	f := Frame{Type: t}
	bad := func(want string) (Frame, error) {
		return Frame{}, fmt.Errorf("%w: type %d with %d payload bytes, want %s", ErrFrame, t, len(p), want)
	}
	switch t {
	case FrameAuth:
		if len(p) != authSize && len(p) != authSize+ProofSize {
			return bad("a share and a confirmation, optionally followed by a resume proof")
		}
		f.Share, f.Confirmation = p[:ShareSize], p[ShareSize:authSize]
		if len(p) > authSize {
			f.ResumeProof = p[authSize:]
		}
	case FrameWelcome:
		if len(p) != welcomeSize {
			return bad("confirmation, session and two durations")
		}
		f.Confirmation, f.Session = p[:ConfirmationSize], p[ConfirmationSize:ConfirmationSize+SessionSize]
		f.Alive = time.Duration(binary.BigEndian.Uint32(p[ConfirmationSize+SessionSize:])) * time.Millisecond
		f.Dead = time.Duration(binary.BigEndian.Uint32(p[ConfirmationSize+SessionSize+4:])) * time.Millisecond
	case FrameOpen:
		if len(p) != TicketSize+1 {
			return bad("a ticket and a kind")
		}
		f.Ticket, f.Kind = p[:TicketSize], Kind(p[TicketSize])
	case FrameRefuse, FrameClose:
		if len(p) < 1 {
			return bad("a code")
		}
		f.Code, f.Reason = Code(p[0]), string(p[1:])
	case FrameAlive:
		if len(p) != 0 {
			return bad("none")
		}
	}
	return f, nil
}

// frameTags computes the tags of the frames one side sends after WELCOME:
// HMAC-SHA-256 under that side's frame key over a counter, the type and
// the payload, cut to TagSize. The counter starts at 0 and counts every
// frame the side sends, so a frame cannot be injected, replayed, dropped
// or reordered without the next tag failing.
//
// It keeps SHA-256's chaining states after the key's inner and outer
// pads, as crypto/hmac keeps whole digests once reset, and computes each
// tag from them with a pooled digest: a quarter of the cost of keying an
// HMAC anew. A Sealer or Opener is so an 80-byte allocation, of which a
// gateway holds two per agent; with the digests' whole marshaled states it
// took 256, and hashing the pads again for each tag instead costs 185 ns
// more (BenchmarkSealAlive).
type frameTags struct {
	inner, outer chainState
	counter      uint64
}

// chainState is SHA-256's chaining state after whole blocks.
type chainState [sha256.Size]byte

// oneBlock is the marshaled state of a SHA-256 digest that hashed one
// block, with its chaining state at chainAt: the rest of it (the format's
// magic, an empty buffer and a length of one block) is the same whatever
// the block.
var oneBlock, chainAt = oneBlockLayout()

// oneBlockLayout finds where the chaining state lies in the marshaled
// state of a digest that hashed one block: the 32 bytes in which digests
// of four different blocks differ.
func oneBlockLayout() ([]byte, int) {
	const unexpected = "wire: SHA-256's marshaled state is not laid out as expected"
	d := &digest{h: sha256.New()}
	first := d.marshalAfter(make([]byte, sha256.BlockSize))
	lo, hi := len(first), -1
	for _, fill := range []byte{0x36, 0x5c, 0xff} {
		other := d.marshalAfter(bytes.Repeat([]byte{fill}, sha256.BlockSize))
		if len(other) != len(first) {
			panic(unexpected)
		}
		for i := range first {
			if first[i] != other[i] {
				lo, hi = min(lo, i), max(hi, i)
			}
		}
	}
	if hi-lo != sha256.Size-1 {
		panic(unexpected)
	}
	return first, lo
}

func newFrameTags(key []byte) frameTags {
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	var inner, outer [sha256.BlockSize]byte
	copy(inner[:], key)
	copy(outer[:], key)
	for i := range inner {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	d := digests.Get().(*digest)
	defer digests.Put(d)
	return frameTags{
		inner: chainState(d.marshalAfter(inner[:])[chainAt:]),
		outer: chainState(d.marshalAfter(outer[:])[chainAt:]),
	}
}

// digest is a SHA-256 digest with room for its sum and a marshaled state.
type digest struct {
	h     hash.Hash
	sum   [sha256.Size]byte
	state []byte
}

var digests = sync.Pool{New: func() any { return &digest{h: sha256.New(), state: bytes.Clone(oneBlock)} }}

// next returns the tag of the next frame.
func (t *frameTags) next(typ FrameType, payload []byte) [TagSize]byte {
	d := digests.Get().(*digest)
	defer digests.Put(d)
	d.restore(&t.inner)
	var hdr [9]byte
	binary.BigEndian.PutUint64(hdr[:8], t.counter)
	hdr[8] = byte(typ)
	d.h.Write(hdr[:])
	d.h.Write(payload)
	t.counter++
	d.h.Sum(d.sum[:0])
	d.restore(&t.outer)
	d.h.Write(d.sum[:])
	d.h.Sum(d.sum[:0])
	return [TagSize]byte(d.sum[:TagSize])
}

// marshalAfter returns the digest's marshaled state after hashing pad
// alone.
func (d *digest) marshalAfter(pad []byte) []byte {
	d.h.Reset()
	d.h.Write(pad)
	state, err := d.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // SHA-256 always marshals its state
	}
	return state
}

// restore sets the digest to the state after one block whose chaining
// state is c.
func (d *digest) restore(c *chainState) {
	copy(d.state[chainAt:], c[:])
	if err := d.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(d.state); err != nil {
		panic(err) // the state is SHA-256's own
	}
}

// Sealer tags the frames one side sends on a registered control
// connection. It is not safe for concurrent use: its user serializes the
// writes anyway.
type Sealer struct{ tags frameTags }

// NewSealer returns the sealer of the frames the agent (fromAgent) or the
// gateway sends in the session of key k.
func NewSealer(k SessionKey, fromAgent bool) *Sealer {
	return &Sealer{newFrameTags(k.frameKey(fromAgent))}
}

// Append encodes f with its tag onto b.
func (s *Sealer) Append(b []byte, f Frame) ([]byte, error) {
	p, err := f.payload()
	if err != nil {
		return b, err
	}
	return s.AppendPayload(b, f.Type, p), nil
}

// AppendPayload encodes a frame of any type from its payload, with its
// tag, onto b: for frame types that this version does not define.
func (s *Sealer) AppendPayload(b []byte, t FrameType, payload []byte) []byte {
	tag := s.tags.next(t, payload)
	return appendFrame(b, t, payload, tag[:])
}

// Opener checks the tags of the frames the peer sends on a registered
// control connection.
type Opener struct{ tags frameTags }

// NewOpener returns the opener of the frames the agent (fromAgent) or the
// gateway sends in the session of key k.
func NewOpener(k SessionKey, fromAgent bool) *Opener {
	return &Opener{newFrameTags(k.frameKey(fromAgent))}
}

// ReadFrame reads one tagged frame and checks its tag. Frames of unknown
// types come back with only Type set, once their tag is checked.
func (o *Opener) ReadFrame(r io.Reader) (Frame, error) {
	t, p, err := readRaw(r, TagSize)
	if err != nil {
		return Frame{}, err
	}
	return o.open(t, p)
}

// ReadFrameAfter reads the rest of the tagged frame whose header its caller
// read into hdr, and checks its tag as ReadFrame does. A goroutine that
// waits for frames most of its life can so wait with only its own loop and
// io.ReadFull above the connection's Read on its stack.
func (o *Opener) ReadFrameAfter(hdr [HeaderSize]byte, r io.Reader) (Frame, error) {
	t, p, err := readPayload(hdr, r, TagSize)
	if err != nil {
		return Frame{}, err
	}
	return o.open(t, p)
}

// ReadWelcome reads the gateway's answer to AUTH: a WELCOME, which is the
// first tagged frame of the session (so that nobody on the path can change
// its session, alive or dead values), or an untagged REFUSE or CLOSE.
func (o *Opener) ReadWelcome(r io.Reader) (Frame, error) {
	t, p, err := readRaw(r, TagSize)
	if err != nil {
		return Frame{}, err
	}
	if t == FrameWelcome {
		return o.open(t, p)
	}
	return DecodeFrame(t, p)
}

// open checks the tag of a frame's payload and decodes the rest.
func (o *Opener) open(t FrameType, p []byte) (Frame, error) {
	if len(p) < TagSize {
		return Frame{}, fmt.Errorf("%w: type %d without its tag", ErrFrame, t)
	}
	body, tag := p[:len(p)-TagSize], p[len(p)-TagSize:]
	if want := o.tags.next(t, body); !hmac.Equal(tag, want[:]) {
		return Frame{}, ErrFrameTag
	}
	return DecodeFrame(t, body)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
