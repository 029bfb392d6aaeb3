package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: FrameAuth, Proof: filled(ProofSize, 1)},
		{Type: FrameAuth, Proof: filled(ProofSize, 1), ResumeProof: filled(ProofSize, 2)},
		{Type: FrameWelcome, Proof: filled(ProofSize, 3), Session: filled(SessionSize, 4), Alive: 20 * time.Second, Dead: time.Minute},
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
	if _, err := (Frame{Type: FrameClose, Reason: string(make([]byte, MaxPayload))}).Append(nil); !errors.Is(err, ErrFrame) {
		t.Errorf("encoding an oversized frame: %v", err)
	}
}
