package attack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// TestTLSManInTheMiddle puts a man in the middle between an agent run with
// -insecure and the gateway: it ends the agent's TLS with its own
// self-signed certificate, opens its own TLS to the gateway and relays the
// plain bytes both ways, recording them. Must hold: the handshake fails,
// since the two TLS sessions give different channel bindings; the agent
// logs an error that names the gateway it dialled and says it waits at
// least 5 minutes (each attempt is an online guess for whoever answers),
// and no second hello reaches the man in the middle within 3 s; the
// gateway logs a refusal and registers nothing; and the recording gives
// the eavesdropper's toolbox nothing, as on a plain path.
func TestTLSManInTheMiddle(t *testing.T) {
	t.Parallel()
	const password = "Mitm-Pw-3"
	local := e2e.LocalService(t, "mitm")
	g := e2e.StartGateway(t, env, "SSL /~~mitm="+password+"#:*;\n")
	r := newRelay(t, g.Address(), "", true)
	agent := env.StartAgent(t, "agent", fmt.Sprintf("SSL /~~mitm=%s#%s => %s;\n", password, r.addr(), local.Listener.Addr().String()),
		"-insecure")

	agent.Log.WaitFor(20*time.Second, 0, "mitm", "retrying in")
	g.Log.WaitFor(5*time.Second, 0, "agent connection refused", `"name":"mitm"`)
	failedAt := time.Now()
	line := agent.Log.First("mitm", "retrying in")
	t.Logf("the agent said: %s", line)
	if !strings.Contains(line, "ERROR") || !strings.Contains(line, r.addr()) {
		t.Errorf("the agent's log line does not name the gateway %s at level ERROR: %s", r.addr(), line)
	}
	if !strings.Contains(line, "retrying in 5m") {
		t.Errorf("after a failed key confirmation, the agent does not wait 5 minutes: %s", line)
	}
	time.Sleep(3*time.Second - time.Since(failedAt))
	if n := r.count("control"); n != 1 {
		t.Errorf("%d control hellos reached the man in the middle within 3 s, want 1", n)
	}
	if n := g.Log.Count("agent registered"); n > 0 {
		t.Errorf("the gateway registered the agent through the man in the middle")
	}
	rc := r.last("control")
	if rc == nil {
		t.Fatal("the man in the middle recorded no control connection")
	}
	up, down := rc.record()
	c, err := parseControl("mitm", up, down)
	if err != nil {
		t.Fatalf("parsing what the man in the middle recorded: %v", err)
	}
	if !c.challengeF.Bound {
		t.Error("the gateway did not bind the handshake to its TLS session")
	}
	examine(t, c, password)
	assertAbsent(t, "the gateway's log", g.Log.String(), password)
	assertAbsent(t, "the agent's log", agent.Log.String(), password)
}

// forged returns a frame of type typ with payload and a made-up tag: what
// an attacker on the path can send without the session key.
func forged(typ wire.FrameType, payload []byte) []byte {
	tag := make([]byte, wire.TagSize)
	_, _ = rand.Read(tag)
	b := []byte{byte(typ)}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+len(tag)))
	return append(append(b, payload...), tag...)
}

// TestInjectionOnPlainPath injects forged frames into a registered control
// connection on a plain-HTTP path, where anyone on the path can. Toward the
// agent, an OPEN with a made-up tag; toward the gateway, a CLOSE with a
// made-up tag. Must hold: the agent drops the connection (logging that a
// frame failed its tag check) and resumes its session, and opens no back
// connection for the forged OPEN (only the two multiplexed ones a request
// asks for); the gateway closes the registration that
// got the forged CLOSE, logging a tag failure, rather than obeying it, and
// the agent notices.
func TestInjectionOnPlainPath(t *testing.T) {
	t.Parallel()
	local := e2e.LocalService(t, "inj")
	g := e2e.StartGateway(t, env, "/~~inj=inj-pw#:*;\n")
	r := newRelay(t, g.PlainAddress(), "", false)
	agent := env.StartAgent(t, "agent", fmt.Sprintf("/~~inj=inj-pw#%s => %s;\n", r.addr(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "inj")
	time.Sleep(700 * time.Millisecond) // past the WELCOME and an ALIVE
	waitBacks := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for r.count("back") < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d back connections reached the relay, want %d", r.count("back"), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const perRegistration = 2
	if n := r.count("back"); n != 0 {
		t.Errorf("%d back connections before any request, want none", n)
	}
	request := func() {
		t.Helper()
		if status, body, err := e2e.Get(env.Client(), g.URL("/~~inj/hello")); err != nil || status != 200 {
			t.Fatalf("a request through the agent: %d %q %v", status, body, err)
		}
	}
	request()
	waitBacks(perRegistration)

	// A forged OPEN toward the agent.
	ticket := make([]byte, wire.TicketSize)
	_, _ = rand.Read(ticket)
	if err := r.last("control").toAgent(forged(wire.FrameOpen, append(ticket, byte(wire.KindHTTP)))); err != nil {
		t.Fatal(err)
	}
	agent.Log.WaitFor(10*time.Second, 0, "failed its tag check")
	agent.Log.WaitFor(10*time.Second, 0, "registered", `"resumed": true`)
	g.Log.WaitFor(5*time.Second, 0, "agent registered", `"name":"inj"`, `"resumed":true`)
	request()
	waitBacks(2 * perRegistration)
	time.Sleep(500 * time.Millisecond)
	if n := r.count("back"); n != 2*perRegistration {
		t.Errorf("the agent opened %d back connections for two registrations and a forged OPEN, want %d", n, 2*perRegistration)
	}
	if line := agent.Log.First("back connection"); line != "" {
		t.Errorf("the agent logged about a back connection after a forged OPEN: %s", line)
	}

	// A forged CLOSE toward the gateway, on the resumed connection.
	lost := agent.Log.Count("control connection lost")
	reason := []byte("entry removed, go away")
	if err := r.last("control").toGateway(forged(wire.FrameClose, append([]byte{byte(wire.CodeEntryRemoved)}, reason...))); err != nil {
		t.Fatal(err)
	}
	g.Log.WaitFor(5*time.Second, 0, "control frame with a wrong tag", `"name":"inj"`)
	g.Log.WaitFor(5*time.Second, 0, "agent registration closed", `"name":"inj"`, "tag check")
	if n := g.Log.Count("agent registration closed", "go away"); n > 0 {
		t.Error("the gateway obeyed a forged CLOSE")
	}
	// The agent learns that the registration ended: from the gateway's
	// CLOSE when it arrives, or from the connection's end when the
	// gateway's close resets it first.
	deadline := time.Now().Add(10 * time.Second)
	for agent.Log.Count("closed by the gateway", "tag check") == 0 && agent.Log.Count("control connection lost") <= lost {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not notice that the gateway closed its registration; its log:\n%s", agent.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if line := agent.Log.First("closed by the gateway"); line != "" {
		t.Logf("the agent said: %s", line)
	}
}
