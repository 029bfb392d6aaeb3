package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestStreamOpening: an opening reads back with its kind only under the
// session key, ticket and stream id it was made for.
func TestStreamOpening(t *testing.T) {
	key := SessionKey(filled(SessionKeySize, 7))
	ticket := filled(TicketSize, 1)
	open := StreamOpen(key, ticket, 5, KindRDP)
	if len(open) != StreamOpenSize {
		t.Fatalf("opening of %d bytes, want %d", len(open), StreamOpenSize)
	}
	if kind, err := ReadStreamOpen(bytes.NewReader(open), key, ticket, 5); err != nil || kind != KindRDP {
		t.Fatalf("ReadStreamOpen = %s, %v; want rdp", kind, err)
	}
	changedKind := append([]byte{byte(KindHTTP)}, open[1:]...)
	for name, c := range map[string]struct {
		open   []byte
		key    SessionKey
		ticket []byte
		id     uint32
	}{
		"other key":    {open, SessionKey(filled(SessionKeySize, 8)), ticket, 5},
		"other ticket": {open, key, filled(TicketSize, 2), 5},
		"other stream": {open, key, ticket, 7},
		"kind changed": {changedKind, key, ticket, 5},
	} {
		if _, err := ReadStreamOpen(bytes.NewReader(c.open), c.key, c.ticket, c.id); !errors.Is(err, ErrStreamTag) {
			t.Errorf("%s: %v, want ErrStreamTag", name, err)
		}
	}
	if _, err := ReadStreamOpen(bytes.NewReader(open[:5]), key, ticket, 5); err == nil {
		t.Error("a short opening was read")
	}
}

// TestStreamAnswers: an acceptance reads as nil, a refusal as its code and
// reason, cut to what fits.
func TestStreamAnswers(t *testing.T) {
	if err := ReadStreamAnswer(bytes.NewReader(StreamAccepted)); err != nil {
		t.Errorf("accepted: %v", err)
	}
	long := strings.Repeat("é", 200)
	err := ReadStreamAnswer(bytes.NewReader(StreamRefused(CodeTooMany, long)))
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Code != CodeTooMany || !strings.HasPrefix(long, ref.Reason) || len(ref.Reason) > 255 {
		t.Errorf("refused: %v", err)
	}
	if err := ReadStreamAnswer(bytes.NewReader([]byte{byte(CodeTooMany), 10, 'x'})); err == nil {
		t.Error("a truncated refusal was read")
	}
}
