package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// muxFor starts an agent with opts that serves local for name "home"
// at a fresh gateway, and returns it with its first multiplexed back
// connection.
func muxFor(t *testing.T, opts func(*Options), local string) (*running, *testgateway.Back) {
	t.Helper()
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	o := optionsFor(g)
	if opts != nil {
		opts(&o)
	}
	a := startAgent(t, o, g.Entry("home", "pw", local))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	t.Cleanup(func() { b.Close() })
	return a, b
}

// echo writes msg on s and checks that it comes back.
func echo(s net.Conn, msg []byte) error {
	if err := s.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := s.Write(msg); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// TestOldKindsIgnored: an OPEN for a back connection of a former kind
// (one session per connection) is ignored with a warning: the agent
// opens back connections for multiplexed tickets only, and goes on
// serving those.
func TestOldKindsIgnored(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	a := startAgent(t, optionsFor(g), g.Entry("home", "pw", localHTTP(t)))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindHTTP)
	c.Open(wire.KindRDP)
	a.waitLog(t, "ignoring an OPEN for a back connection of kind http")
	a.waitLog(t, "ignoring an OPEN for a back connection of kind rdp")

	// The test gateway fails the test on a back connection for a ticket
	// that is not multiplexed; the first one it gets is for this ticket.
	ticket := c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	if !bytes.Equal(b.Ticket, ticket) {
		t.Fatalf("the back connection presents the ticket %x, want the multiplexed one %x", b.Ticket, ticket)
	}
	if got := request(t, b, "/after"); got != "local /after ping" {
		t.Errorf("answer %q", got)
	}
	testgateway.Nothing(t, g.Backs, 200*time.Millisecond, "back connection for an OPEN of a former kind")
}

// TestForgedStreamOpening: a stream whose opening does not carry the tag
// of the session key, the back connection's ticket, the stream's id and
// its kind is dropped without an answer, before the agent connects to the
// local service; the back connection serves other streams.
func TestForgedStreamOpening(t *testing.T) {
	local := countedHTTP(t)
	a, b := muxFor(t, nil, local.addr)
	other := bytes.Repeat([]byte{7}, wire.TicketSize)
	forged := []struct {
		name    string
		opening func(id uint32) []byte
	}{
		{"other ticket", func(id uint32) []byte { return wire.StreamOpen(b.Key, other, id, wire.KindHTTP) }},
		{"other session key", func(id uint32) []byte {
			return wire.StreamOpen(wire.SessionKey(bytes.Repeat([]byte{7}, wire.SessionKeySize)), b.Ticket, id, wire.KindHTTP)
		}},
		{"other stream id", func(id uint32) []byte { return wire.StreamOpen(b.Key, b.Ticket, id+2, wire.KindHTTP) }},
		{"kind changed", func(id uint32) []byte {
			o := wire.StreamOpen(b.Key, b.Ticket, id, wire.KindHTTP)
			o[0] = byte(wire.KindRDP)
			return o
		}},
	}
	for _, f := range forged {
		s, err := b.Open(t, f.opening)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := s.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("%s: the agent answered %d bytes, %v; want the stream closed without an answer", f.name, n, err)
		}
		s.Close()
	}
	// Each stream is closed after its log line.
	if n := a.countLogs("a stream's opening failed its tag check"); n != len(forged) {
		t.Errorf("%d log lines about a forged opening, want %d", n, len(forged))
	}
	if n := local.accepted.Load(); n != 0 {
		t.Errorf("the local service got %d connections for forged streams, want none", n)
	}
	if got := request(t, b, "/real"); got != "local /real ping" {
		t.Errorf("answer %q", got)
	}
	if n := local.accepted.Load(); n != 1 {
		t.Errorf("the local service got %d connections, want 1 for the real stream", n)
	}
}

// TestReplayedStreamID: a stream opened under an id that is not above
// every earlier one on the back connection (something on the path replays
// a stream's frames) is dropped before its opening is read, whatever its
// tag, and the local service gets no connection.
func TestReplayedStreamID(t *testing.T) {
	local := countedHTTP(t)
	a, b := muxFor(t, nil, local.addr)
	const replayed = "the gateway reused a stream id"

	// A session that the local service ends: the agent closes the stream
	// first, so it has forgotten the stream once it reads the gateway's
	// close, and sees its id again as a new stream.
	s, err := b.Stream(t, wire.KindHTTP)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(s, "GET /first HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
	if answer, err := io.ReadAll(s); err != nil || !bytes.HasSuffix(answer, []byte("local /first ")) {
		t.Fatalf("first session: %q, %v", answer, err)
	}
	s.Close()
	first := s.(*mux.Stream).StreamID()
	// The close goes out before the next stream's opening: once that
	// session is answered, the agent has read it.
	if got := request(t, b, "/between"); got != "local /between ping" {
		t.Errorf("answer between %q", got)
	}

	// The same id again, with a right tag.
	if err := b.Inject(first, wire.StreamOpen(b.Key, b.Ticket, first, wire.KindHTTP)); err != nil {
		t.Fatal(err)
	}
	a.waitLogs(t, replayed, 1)

	// An id below the last one, never used: the gateway's ids are odd.
	if got := request(t, b, "/second"); got != "local /second ping" {
		t.Errorf("second answer %q", got)
	}
	lower := first + 1
	if err := b.Inject(lower, wire.StreamOpen(b.Key, b.Ticket, lower, wire.KindHTTP)); err != nil {
		t.Fatal(err)
	}
	a.waitLogs(t, replayed, 2)

	if got := request(t, b, "/third"); got != "local /third ping" {
		t.Errorf("third answer %q", got)
	}
	if n := local.accepted.Load(); n != 4 {
		t.Errorf("the local service got %d connections, want 4, none for the replayed streams", n)
	}
}

// TestOpenFileBudget: near its open-file budget the agent refuses a
// stream as too-many, saying why, and takes streams again once a session
// ends. With 40 open files it keeps 32 for its own files and holds 8
// connections: the control connection, the back connection and 6
// sessions.
func TestOpenFileBudget(t *testing.T) {
	const sessions = 40 - 32 - 2
	a, b := muxFor(t, func(o *Options) { o.OpenFiles = 40 }, e2e.EchoServer(t))
	open := make([]net.Conn, 0, sessions)
	for i := range sessions {
		s, err := b.Stream(t, wire.KindHTTP)
		if err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		if err := echo(s, []byte{byte(i)}); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		open = append(open, s)
	}
	_, err := b.Stream(t, wire.KindHTTP)
	var ref *wire.Refusal
	if !errors.As(err, &ref) || ref.Code != wire.CodeTooMany || !strings.Contains(ref.Reason, "limit of 40 open files") {
		t.Fatalf("session %d: %v; want a too-many refusal that names the open-file limit", sessions+1, err)
	}
	a.waitLog(t, "refusing sessions: ")
	if st := a.Status(); st.Entries[0].SessionsRefused.TooMany != 1 || st.OpenFiles != (FileBudget{Limit: 40, InUse: 8}) {
		t.Errorf("status after the refusal: %+v", st)
	}

	// The agent gives the session's file back just after it closes the
	// stream: wait for a stream to be taken again.
	open[0].Close()
	if _, err := io.Copy(io.Discard, open[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := b.Stream(t, wire.KindHTTP)
		if err == nil {
			if err := echo(s, []byte("again")); err != nil {
				t.Errorf("session after one ended: %v", err)
			}
			break
		}
		if !errors.As(err, &ref) || ref.Code != wire.CodeTooMany || time.Now().After(deadline) {
			t.Fatalf("session after one ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range open[1:] {
		if err := echo(s, []byte("still")); err != nil {
			t.Errorf("a session open all along: %v", err)
		}
	}
}

// TestManyStreams: a back connection carries 300 sessions at once, each
// to its own connection to the local service.
func TestManyStreams(t *testing.T) {
	const n = 300
	_, b := muxFor(t, nil, e2e.EchoServer(t))
	streams := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := b.Stream(t, wire.KindHTTP)
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			streams[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// All are open: each carries its own bytes.
	for i, s := range streams {
		wg.Go(func() {
			defer s.Close()
			if err := echo(s, bytes.Repeat([]byte(fmt.Sprintf("stream %d;", i)), 1000)); err != nil {
				t.Errorf("stream %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
