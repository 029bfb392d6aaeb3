package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// fakeAgent is the agent's end of one multiplexed back connection: it
// checks each stream's opening and answers it with answer(kind).
type fakeAgent struct {
	session *mux.Session
	kinds   chan wire.Kind
	streams chan net.Conn
}

// registered returns a broker holding a registration of "home" whose one
// multiplexed back connection leads to a fake agent.
func registered(t *testing.T, settings Settings, answer func(wire.Kind) []byte) (*Broker, *registration, *fakeAgent) {
	t.Helper()
	b := newBroker(zap.NewNop())
	key := wire.SessionKey(make([]byte, wire.SessionKeySize))
	control, agentControl := net.Pipe()
	go func() { _, _ = io.Copy(io.Discard, agentControl) }() // the OPENs the keeper sends
	reg := &registration{b: b, name: "home", key: "home", conn: control, settings: settings.WithDefaults(),
		sessionKey: key, sealer: wire.NewSealer(key, false),
		muxChanged: make(chan struct{}, 1), wanted: make(chan struct{}, 1), done: make(chan struct{})}
	reg.stats = b.stats("home")
	reg.lastUse.Store(time.Now().UnixNano()) // in use: the keeper keeps the connection
	b.regs["home"] = reg
	t.Cleanup(func() { reg.close(0, "test over") })

	gwSide, agentSide := net.Pipe()
	ticket := []byte("0123456789abcdef")
	reg.addMux(gwSide, ticket)
	session := mux.Agent(agentSide, nil, zap.NewNop(), time.Minute)
	t.Cleanup(func() { session.Close() })
	a := &fakeAgent{session: session, kinds: make(chan wire.Kind, 100), streams: make(chan net.Conn, 100)}
	go func() {
		for {
			s, err := session.Accept(context.Background())
			if err != nil {
				return
			}
			kind, err := wire.ReadStreamOpen(s, key, ticket, s.StreamID())
			if err != nil {
				t.Errorf("a stream's opening: %v", err)
				s.Close()
				continue
			}
			a.kinds <- kind
			_, _ = s.Write(answer(kind))
			a.streams <- s
		}
	}()
	return b, reg, a
}

func accept(wire.Kind) []byte { return wire.StreamAccepted }

// dialWeb opens n web sessions to "home".
func dialWeb(t *testing.T, b *Broker, n int) []net.Conn {
	t.Helper()
	var open []net.Conn
	for range n {
		c, err := b.Dial(context.Background(), "home", wire.KindHTTP)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	return open
}

// TestDialOpensStreamsOfItsKind: a session is a stream whose opening names
// its kind, and it carries bytes both ways.
func TestDialOpensStreamsOfItsKind(t *testing.T) {
	b, _, a := registered(t, Settings{}, accept)
	for _, kind := range []wire.Kind{wire.KindHTTP, wire.KindRDP} {
		c, err := b.Dial(context.Background(), "HOME", kind)
		if err != nil {
			t.Fatalf("%s session: %v", kind, err)
		}
		if got := <-a.kinds; got != kind {
			t.Errorf("the agent saw a %s stream, want %s", got, kind)
		}
		s := <-a.streams
		_, _ = c.Write([]byte("ping"))
		got := make([]byte, 4)
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(got); err != nil || string(got) != "ping" {
			t.Errorf("the agent read %q, %v", got, err)
		}
		c.Close()
		s.Close()
	}
}

// TestSessionLimits: beyond max_sessions, and beyond the RDP budget, a
// session is refused at once with too-many and a 503, each kind apart;
// a closed session gives its place back.
func TestSessionLimits(t *testing.T) {
	b, reg, _ := registered(t, Settings{MaxSessions: 3}, accept)
	open := dialWeb(t, b, 3)
	start := time.Now()
	_, err := b.Dial(context.Background(), "home", wire.KindHTTP)
	var se *SessionError
	if !errors.As(err, &se) || se.Code != wire.CodeTooMany || se.Status() != http.StatusServiceUnavailable || se.AtAgent ||
		!strings.Contains(se.Error(), "3 http sessions") {
		t.Fatalf("a session beyond max_sessions: %v, want too-many from the gateway", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the refusal took %s, want it at once", d)
	}
	// RDP has a budget of its own.
	rdp, err := b.Dial(context.Background(), "home", wire.KindRDP)
	if err != nil {
		t.Fatalf("an RDP session while the web's budget is spent: %v", err)
	}
	rdp.Close()
	reg.sessions[wire.KindRDP].Store(maxRDPSessions)
	if _, err := b.Dial(context.Background(), "home", wire.KindRDP); !errors.As(err, &se) || se.Code != wire.CodeTooMany {
		t.Errorf("an RDP session beyond its budget: %v, want too-many", err)
	}
	open[0].Close()
	open[0].Close() // closing twice gives one place back
	c, err := b.Dial(context.Background(), "home", wire.KindHTTP)
	if err != nil {
		t.Fatalf("after a session closed: %v", err)
	}
	c.Close()
	if _, err := b.Dial(context.Background(), "home", wire.KindHTTP); err != nil {
		t.Errorf("after two sessions closed: %v", err)
	}
}

// TestAgentRefusals: a refusal from the agent reaches the caller with its
// code, reason and status, and gives the session's place back.
func TestAgentRefusals(t *testing.T) {
	b, reg, _ := registered(t, Settings{}, func(kind wire.Kind) []byte {
		if kind == wire.KindRDP {
			return wire.StreamRefused(wire.CodeLocalUnavailable, "connecting to the local service 127.0.0.1:3389: connection refused")
		}
		return wire.StreamRefused(wire.CodeTooMany, "the agent holds 95 connections, near its limit of 100 open files")
	})
	for kind, want := range map[wire.Kind]int{wire.KindHTTP: http.StatusServiceUnavailable, wire.KindRDP: http.StatusBadGateway} {
		_, err := b.Dial(context.Background(), "home", kind)
		var se *SessionError
		if !errors.As(err, &se) || !se.AtAgent || se.Status() != want || !strings.Contains(se.Error(), "the agent refused") {
			t.Errorf("%s: %v, want a refusal from the agent answered %d", kind, err, want)
		}
		if n := reg.sessions[kind].Load(); n != 0 {
			t.Errorf("%s: %d sessions counted after a refusal", kind, n)
		}
	}
}

// TestNoAnswerIsATimeout: an agent that never answers a stream's opening
// makes the session fail after back_wait as a timeout (504), not hang.
func TestNoAnswerIsATimeout(t *testing.T) {
	b, _, _ := registered(t, Settings{BackWait: 300 * time.Millisecond}, func(wire.Kind) []byte { return nil })
	start := time.Now()
	_, err := b.Dial(context.Background(), "home", wire.KindHTTP)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("no answer: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %s, want back_wait (300ms)", d)
	}
}

// TestBusyConnectionIsRetired: a connection whose stream ids pass the
// retirement mark takes no new streams, asks for a replacement, and closes
// once its last stream ended.
func TestBusyConnectionIsRetired(t *testing.T) {
	defer func(id uint32, poll time.Duration) { retireStreamID, retirePoll = id, poll }(retireStreamID, retirePoll)
	retireStreamID, retirePoll = 5, 20*time.Millisecond // the third stream: ids 1, 3, 5
	b, reg, a := registered(t, Settings{BackWait: 300 * time.Millisecond}, accept)
	open := dialWeb(t, b, 3)
	// The keeper asked for the registration's second connection when the
	// first arrived, and now asks for the retired one's replacement.
	deadline := time.Now().Add(2 * time.Second)
	for {
		reg.b.mu.Lock()
		pending := reg.pending
		reg.b.mu.Unlock()
		if pending >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections asked for, want a replacement of the retired one too", pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m, _ := reg.pickMux(); m != nil {
		t.Error("the retired connection still takes new streams")
	}
	for _, c := range open {
		c.Close()
	}
	for range 3 {
		(<-a.streams).Close()
	}
	select {
	case <-a.session.Done():
	case <-time.After(5 * time.Second):
		t.Error("the retired connection stayed open after its last stream ended")
	}
}

// TestKeeperRestsWhileASessionOutlivesTheIdleTimeout: a session open past
// the idle timeout keeps the name active, and its keeper looks again after
// another timeout rather than spinning.
func TestKeeperRestsWhileASessionOutlivesTheIdleTimeout(t *testing.T) {
	b, _, _ := registered(t, Settings{IdleTimeout: 50 * time.Millisecond}, accept)
	open := dialWeb(t, b, 1)
	defer open[0].Close()
	time.Sleep(100 * time.Millisecond) // past the idle timeout, the session still open
	before := cpuTime(t)
	time.Sleep(500 * time.Millisecond)
	if used := cpuTime(t) - before; used > 100*time.Millisecond {
		t.Errorf("the process used %s of CPU in 500ms while one session was held: the keeper spins", used)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
