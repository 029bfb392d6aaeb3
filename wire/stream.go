package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sizes of a stream's opening, which the gateway writes first on every
// stream of a multiplexed back connection: the kind, then the tag.
const (
	StreamTagSize  = 16
	StreamOpenSize = 1 + StreamTagSize
)

// ErrStreamTag reports a stream opening whose tag is wrong: the stream was
// not opened by the gateway that holds the session.
var ErrStreamTag = errors.New("stream opening with a wrong tag")

// StreamTag authenticates the opening of stream id, carrying kind, on the
// multiplexed back connection that presented ticket.
func (k SessionKey) StreamTag(ticket []byte, id uint32, kind Kind) []byte {
	return mac(k, "stream", ticket, binary.BigEndian.AppendUint32(nil, id), []byte{byte(kind)})[:StreamTagSize]
}

// StreamOpen is the opening the gateway writes on stream id.
func StreamOpen(key SessionKey, ticket []byte, id uint32, kind Kind) []byte {
	return append([]byte{byte(kind)}, key.StreamTag(ticket, id, kind)...)
}

// ReadStreamOpen reads the opening of stream id from r and returns its
// kind once the tag is right: ErrStreamTag otherwise.
func ReadStreamOpen(r io.Reader, key SessionKey, ticket []byte, id uint32) (Kind, error) {
	var b [StreamOpenSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("reading the stream's opening: %w", err)
	}
	kind := Kind(b[0])
	if !Equal(b[1:], key.StreamTag(ticket, id, kind)) {
		return 0, ErrStreamTag
	}
	return kind, nil
}

// maxStreamReason bounds the reason of a refused stream.
const maxStreamReason = 255

// StreamAccepted is the agent's answer to a stream's opening once it has
// connected the stream to its local service.
var StreamAccepted = []byte{0}

// StreamRefused is the agent's answer to a stream's opening that it
// cannot serve: the code, then the reason behind its length in one byte.
func StreamRefused(code Code, reason string) []byte {
	reason = truncateUTF8(reason, maxStreamReason)
	return append([]byte{byte(code), byte(len(reason))}, reason...)
}

// ReadStreamAnswer reads the agent's answer to a stream's opening: nil
// when it accepted the stream, a *Refusal when it refused it.
func ReadStreamAnswer(r io.Reader) error {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return fmt.Errorf("reading the agent's answer to a stream: %w", err)
	}
	if b[0] == 0 {
		return nil
	}
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return fmt.Errorf("reading the agent's answer to a stream: %w", err)
	}
	reason := make([]byte, b[1])
	if _, err := io.ReadFull(r, reason); err != nil {
		return fmt.Errorf("reading the agent's answer to a stream: %w", err)
	}
	return &Refusal{Code: Code(b[0]), Reason: string(reason)}
}
