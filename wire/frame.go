package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// FrameType is the first byte of a control frame.
type FrameType uint8

// Control frame types. A receiver ignores types it does not know, so that
// later versions can add frames.
const (
	FrameAuth    FrameType = 1 // agent: Proof, then ResumeProof when resuming
	FrameWelcome FrameType = 2 // gateway: Proof, Session, alive interval, dead time
	FrameRefuse  FrameType = 3 // gateway: Code, Reason; the connection closes
	FrameAlive   FrameType = 4 // either: empty
	FrameOpen    FrameType = 5 // gateway: Ticket, Kind
	FrameClose   FrameType = 6 // either: Code, Reason; the connection closes
)

// MaxPayload is the largest frame payload.
const MaxPayload = 1<<16 - 1

// frameHeaderSize is a type byte and a big-endian 16-bit payload length.
const frameHeaderSize = 3

// Kind says what a back connection will carry.
type Kind uint8

// Back connection kinds.
const (
	KindHTTP Kind = 0
	KindRDP  Kind = 1
)

// Frame is one control frame. Which fields are set depends on Type.
type Frame struct {
	Type        FrameType
	Proof       []byte // Auth, Welcome
	ResumeProof []byte // Auth, when resuming
	Session     []byte // Welcome
	Alive       time.Duration
	Dead        time.Duration // Welcome
	Ticket      []byte        // Open
	Kind        Kind          // Open
	Code        Code          // Refuse, Close
	Reason      string        // Refuse, Close
}

// ErrFrame reports a frame that does not follow the protocol.
var ErrFrame = errors.New("malformed frame")

// Append encodes the frame onto b.
func (f Frame) Append(b []byte) ([]byte, error) {
	var payload []byte
	switch f.Type {
	case FrameAuth:
		payload = append(append(payload, f.Proof...), f.ResumeProof...)
	case FrameWelcome:
		payload = append(append(payload, f.Proof...), f.Session...)
		payload = binary.BigEndian.AppendUint32(payload, uint32(f.Alive/time.Millisecond))
		payload = binary.BigEndian.AppendUint32(payload, uint32(f.Dead/time.Millisecond))
	case FrameOpen:
		payload = append(append(payload, f.Ticket...), byte(f.Kind))
	case FrameRefuse, FrameClose:
		payload = append([]byte{byte(f.Code)}, f.Reason...)
	case FrameAlive:
	default:
		return b, fmt.Errorf("%w: cannot encode type %d", ErrFrame, f.Type)
	}
	if len(payload) > MaxPayload {
		return b, fmt.Errorf("%w: payload of %d bytes", ErrFrame, len(payload))
	}
	b = append(b, byte(f.Type))
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...), nil
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := f.Append(make([]byte, 0, 64))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame. Frames of unknown types come back with only
// Type set, for the caller to ignore.
func ReadFrame(r io.Reader) (Frame, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	payload := make([]byte, binary.BigEndian.Uint16(hdr[1:]))
	if _, err := io.ReadFull(r, payload); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return DecodeFrame(FrameType(hdr[0]), payload)
}

// DecodeFrame decodes a payload of the given type.
func DecodeFrame(t FrameType, p []byte) (Frame, error) {
	f := Frame{Type: t}
	bad := func(want string) (Frame, error) {
		return Frame{}, fmt.Errorf("%w: type %d with %d payload bytes, want %s", ErrFrame, t, len(p), want)
	}
	switch t {
	case FrameAuth:
		switch len(p) {
		case ProofSize:
			f.Proof = p
		case 2 * ProofSize:
			f.Proof, f.ResumeProof = p[:ProofSize], p[ProofSize:]
		default:
			return bad("a proof, optionally followed by a resume proof")
		}
	case FrameWelcome:
		if len(p) != ProofSize+SessionSize+8 {
			return bad("proof, session and two durations")
		}
		f.Proof, f.Session = p[:ProofSize], p[ProofSize:ProofSize+SessionSize]
		f.Alive = time.Duration(binary.BigEndian.Uint32(p[ProofSize+SessionSize:])) * time.Millisecond
		f.Dead = time.Duration(binary.BigEndian.Uint32(p[ProofSize+SessionSize+4:])) * time.Millisecond
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
