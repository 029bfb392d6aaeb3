package agent

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// waitStatus waits until ok holds for the status of the entry at index i
// of a's Status, and returns that status.
func waitStatus(t *testing.T, a *Agent, i int, what string, ok func(EntryStatus) bool) EntryStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := a.Status().Entries[i]
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %d: timed out waiting for %s; status %+v", i, what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inState returns a condition of waitStatus: the entry is in state.
func inState(state State) func(EntryStatus) bool {
	return func(s EntryStatus) bool { return s.State == state }
}

// TestStatusStates: Status follows each entry through its states, with
// the gateway's refusals, the failures, the drops and the resumptions, and
// lists the entries the agent cannot serve as stopped.
func TestStatusStates(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Refuse = wire.CodeNameTaken })
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	opts.SlowRetry = time.Hour
	home := g.Entry("home", "pw", localHTTP(t))
	down := g.Entry("down", "pw", "")
	down.Gateway = hostPort(t, closedPort(t))
	dup := g.Entry("HOME", "pw", "")
	dup.Pos.Line = 3
	a := startAgent(t, opts, home, down, dup)

	s := waitStatus(t, a.Agent, 0, "a refusal", inState(StateRefused))
	if s.Refusal == nil || s.Refusal.Code != "name-taken" || !strings.Contains(s.LastError, "name-taken") ||
		s.Registrations.Refused == 0 || !s.RetryAt.After(s.Since) || !s.RegisteredSince.IsZero() {
		t.Errorf("refused entry: %+v", s)
	}
	if s.Name != "home" || s.Position != "backbalance.bin:1:1" || s.Gateway != g.Addr.String() || s.TLS {
		t.Errorf("refused entry's settings: %+v", s)
	}
	s = waitStatus(t, a.Agent, 1, "a failure", inState(StateWaiting))
	if !strings.Contains(s.LastError, "connecting to the gateway") || s.Registrations.Failed == 0 ||
		s.Refusal != nil || s.RetryAt.IsZero() || s.LastErrorAt.IsZero() {
		t.Errorf("entry whose gateway is down: %+v", s)
	}
	s = a.Status().Entries[2]
	if s.State != StateStopped || !strings.Contains(s.LastError, "the name is already used") {
		t.Errorf("entry that repeats a name: %+v", s)
	}

	g.Set(func(s *testgateway.Settings) { s.Refuse = 0 })
	first := testgateway.Receive(t, g.Controls, "a control connection")
	s = waitStatus(t, a.Agent, 0, "the registration", inState(StateRegistered))
	if s.Refusal != nil || !s.RetryAt.IsZero() || s.RegisteredSince.IsZero() || s.Registrations.Registered != 1 || s.Resumed != 0 {
		t.Errorf("registered entry: %+v", s)
	}
	registered := s.RegisteredSince

	// A drop: the agent takes its session back.
	first.Conn.Close()
	second := testgateway.Receive(t, g.Controls, "the resumed control connection")
	s = waitStatus(t, a.Agent, 0, "the resumption", func(s EntryStatus) bool { return s.Resumed == 1 && s.State == StateRegistered })
	if !strings.Contains(s.LastError, "control connection lost") || !s.RegisteredSince.After(registered) || s.Registrations.Registered != 2 {
		t.Errorf("resumed entry: %+v", s)
	}

	// The gateway closes the registration for good.
	second.Send(wire.Frame{Type: wire.FrameClose, Code: wire.CodeEntryRemoved, Reason: "gone from balance.bin"})
	second.Conn.Close()
	s = waitStatus(t, a.Agent, 0, "the close", inState(StateRefused))
	if s.Refusal == nil || *s.Refusal != (Refusal{Code: "entry-removed", Reason: "gone from balance.bin"}) ||
		s.LastError != "closed by the gateway: entry-removed: gone from balance.bin" ||
		s.RetryAt.Sub(s.Since) != time.Hour {
		t.Errorf("closed entry: %+v", s)
	}

	a.stop()
	for i, s := range a.Status().Entries {
		if s.State != StateStopped {
			t.Errorf("entry %d after Run: %s, want stopped", i, s.State)
		}
	}
}

// TestStatusCountsSessions: Status and the collector count the back
// connections, the sessions by kind, their bytes as they flow, and the
// sessions refused.
func TestStatusCountsSessions(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	e := g.Entry("home", "pw", e2e.EchoServer(t))
	rdp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rdp.Close()
	go func() {
		for {
			conn, err := rdp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	e.RDP, e.RDPSet = hostPort(t, rdp.Addr().String()), true
	a := startAgent(t, optionsFor(g), e)
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	waitStatus(t, a.Agent, 0, "the back connection", func(s EntryStatus) bool { return s.BackConnections == 1 })

	var streams []net.Conn
	for _, sess := range []struct {
		kind wire.Kind
		size int
	}{{wire.KindHTTP, 1000}, {wire.KindHTTP, 500}, {wire.KindRDP, 300}} {
		s, err := b.Stream(t, sess.kind)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := echo(s, []byte(strings.Repeat("x", sess.size))); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	waitStatus(t, a.Agent, 0, "three open sessions and their bytes", func(s EntryStatus) bool {
		return s.Sessions == Sessions{HTTP: SessionCount{Open: 2, Total: 2}, RDP: SessionCount{Open: 1, Total: 1}} &&
			s.BytesToLocal == 1800 && s.BytesFromLocal == 1800
	})

	// The RDP service goes away: the next RDP session is refused.
	rdp.Close()
	_, err = b.Stream(t, wire.KindRDP)
	if ref := (*wire.Refusal)(nil); !errors.As(err, &ref) || ref.Code != wire.CodeLocalUnavailable {
		t.Fatalf("RDP session without its service: %v, want local-unavailable", err)
	}
	for _, s := range streams {
		s.Close()
	}
	s := waitStatus(t, a.Agent, 0, "the sessions' ends", func(s EntryStatus) bool {
		return s.Sessions.HTTP.Open == 0 && s.Sessions.RDP.Open == 0
	})
	if s.Sessions.HTTP.Total != 2 || s.Sessions.RDP.Total != 1 || s.BytesToLocal != 1800 || s.BytesFromLocal != 1800 ||
		s.SessionsRefused != (SessionRefusals{LocalUnavailable: 1}) {
		t.Errorf("after the sessions: %+v", s)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collector())
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %+v", err, problems)
	}
	want := `
# HELP tildegate_agent_back_connections_open Multiplexed back connections open, by entry name.
# TYPE tildegate_agent_back_connections_open gauge
tildegate_agent_back_connections_open{name="home"} 1
# HELP tildegate_agent_bytes_total Bytes of the sessions, by entry name and direction (to_local, from_local: to and from the local service).
# TYPE tildegate_agent_bytes_total counter
tildegate_agent_bytes_total{direction="from_local",name="home"} 1800
tildegate_agent_bytes_total{direction="to_local",name="home"} 1800
# HELP tildegate_agent_entries Entries of backbalance.bin, by the state of their registration.
# TYPE tildegate_agent_entries gauge
tildegate_agent_entries{state="connecting"} 0
tildegate_agent_entries{state="refused"} 0
tildegate_agent_entries{state="registered"} 1
tildegate_agent_entries{state="stopped"} 0
tildegate_agent_entries{state="waiting"} 0
# HELP tildegate_agent_gateways_registered Addresses of the entry's gateway at which the entry is registered, by entry name.
# TYPE tildegate_agent_gateways_registered gauge
tildegate_agent_gateways_registered{name="home"} 1
# HELP tildegate_agent_sessions_open Sessions open, by entry name and kind (http, rdp).
# TYPE tildegate_agent_sessions_open gauge
tildegate_agent_sessions_open{kind="http",name="home"} 0
tildegate_agent_sessions_open{kind="rdp",name="home"} 0
# HELP tildegate_agent_sessions_refused_total Sessions the agent refused, by entry name and reason (too-many, local-unavailable, bad-request).
# TYPE tildegate_agent_sessions_refused_total counter
tildegate_agent_sessions_refused_total{name="home",reason="bad-request"} 0
tildegate_agent_sessions_refused_total{name="home",reason="local-unavailable"} 1
tildegate_agent_sessions_refused_total{name="home",reason="too-many"} 0
# HELP tildegate_agent_sessions_total Sessions accepted, by entry name and kind (http, rdp).
# TYPE tildegate_agent_sessions_total counter
tildegate_agent_sessions_total{kind="http",name="home"} 2
tildegate_agent_sessions_total{kind="rdp",name="home"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tildegate_agent_back_connections_open",
		"tildegate_agent_bytes_total", "tildegate_agent_entries", "tildegate_agent_gateways_registered", "tildegate_agent_sessions_open",
		"tildegate_agent_sessions_refused_total", "tildegate_agent_sessions_total"); err != nil {
		t.Error(err)
	}
}

// hostPort parses addr, a loopback host:port.
func hostPort(t *testing.T, addr string) balancebin.HostPort {
	t.Helper()
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return balancebin.HostPort{Host: ap.IP.String(), Port: uint16(ap.Port)}
}
