package attack

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// wrongGuesses are passwords an eavesdropper might try besides the right
// one; the toolbox must treat them all alike.
var wrongGuesses = []string{"", "password", "Rec-Pw-0", "rec-pw-1", "Rec-Pw-1 ", "hunter2"}

// examine runs the eavesdropper's toolbox over a capture with the right
// password and the wrong guesses: it must find nothing with any of them,
// so that no computation of the toolbox tells the right password from a
// wrong one.
func examine(t *testing.T, c *capture, right string) {
	t.Helper()
	for i, pw := range append([]string{right}, wrongGuesses...) {
		label := "the right password"
		if i > 0 {
			label = fmt.Sprintf("wrong guess #%d", i)
		}
		if found := guess(c, pw, nil, nil); len(found) > 0 {
			t.Errorf("with %s, the eavesdropper recomputed from the transcript: %s", label, strings.Join(found, "; "))
		}
	}
	if c.containsPassword(right) {
		t.Error("the capture holds the password, plainly or encoded")
	}
}

// checkToolbox registers through a recording relay with the toolbox's own
// CPace, then runs the toolbox over that capture with the secrets it used:
// it must find the confirmations and tags then, which shows that it
// computes what the protocol computes, and nothing without the secrets.
func checkToolbox(t *testing.T, g *e2e.Gateway, name, password string) {
	t.Helper()
	r := newRelay(t, g.PlainAddress(), "", false)
	conn := dialFrom(t, "127.0.0.1", r.addr())
	y, key, err := cpaceHandshake(conn, name, password)
	if err != nil {
		t.Fatalf("the toolbox's own CPace could not register %s: %v", name, err)
	}
	conn.Close()
	rc := r.last("control")
	if rc == nil {
		t.Fatal("the relay recorded no control connection")
	}
	up, down := rc.record()
	c, err := parseControl(name, up, down)
	if err != nil {
		t.Fatalf("parsing the toolbox's own handshake: %v", err)
	}
	withSecrets := strings.Join(guess(c, password, []*ristretto255.Scalar{y}, []wire.SessionKey{key}), "; ")
	for _, want := range []string{"equals the agent's confirmation", "equals the gateway's confirmation", "gives the tag of the gateway's frame 1"} {
		if !strings.Contains(withSecrets, want) {
			t.Errorf("given the secret scalar and key, the toolbox did not find what %q says; it found: %s", want, withSecrets)
		}
	}
	if found := guess(c, password, nil, nil); len(found) > 0 {
		t.Errorf("without the secrets, the toolbox found: %s", strings.Join(found, "; "))
	}
}

// TestRecordedPlainHTTP records, on a plain-HTTP path, every byte between a
// real agent and the gateway: its registration, its back connections and a
// request through them. Knowing the password, the eavesdropper then tries
// to recompute anything recorded from the password and the public
// transcript (see guess for the list). Must hold: nothing recorded is
// recomputed, with the right password or a wrong one, so a capture gives
// no offline test of a password guess; the password appears nowhere in the
// capture; and the session identifier that back hellos show on a plain
// path does not help to take the name, with the right password or a wrong
// one (both get name-taken alike).
func TestRecordedPlainHTTP(t *testing.T) {
	t.Parallel()
	const password = "Rec-Pw-1"
	local := e2e.LocalService(t, "rec")
	g := e2e.StartGateway(t, env, "/~~rec="+password+"#:*;\n/~~toolbox="+password+"#:*;\n")
	checkToolbox(t, g, "toolbox", password)

	r := newRelay(t, g.PlainAddress(), "", false)
	agent := env.StartAgent(t, "agent", fmt.Sprintf("/~~rec=%s#%s => %s;\n", password, r.addr(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "rec")
	status, body, err := e2e.Get(env.Client(), g.URL("/~~rec/hello"))
	if err != nil || status != http.StatusOK || !strings.HasPrefix(body, "hello from rec") {
		t.Fatalf("request through the recorded tunnel: %d %q %v", status, body, err)
	}
	// The agent keeps spare back connections: wait until some had their 101.
	deadline := time.Now().Add(10 * time.Second)
	for r.count("back") < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few ALIVE frames each way
	rc := r.last("control")
	if rc == nil {
		t.Fatal("the relay recorded no control connection")
	}
	up, down := rc.record()
	c, err := parseControl("rec", up, down)
	if err != nil {
		t.Fatalf("parsing the recorded registration: %v", err)
	}
	for _, bc := range r.all() {
		if bc.role() != "back" {
			continue
		}
		if err := c.addBack(bc.record()); err != nil {
			t.Errorf("parsing a recorded back connection: %v", err)
		}
	}
	if c.tb == nil || len(c.backs) == 0 || len(c.fromGateway) == 0 || len(c.fromAgent) == 0 {
		t.Fatalf("the capture is incomplete: WELCOME %v, %d back connections, %d+%d tagged frames",
			c.tb != nil, len(c.backs), len(c.fromAgent), len(c.fromGateway))
	}
	t.Logf("captured: a registration, %d tagged frames from the agent, %d from the gateway, %d back connections",
		len(c.fromAgent), len(c.fromGateway), len(c.backs))
	examine(t, c, password)

	// The session identifier is public on a plain path: resuming it, with
	// the right password or a wrong one, must not take the name nor tell
	// the passwords apart.
	var answers []answer
	for i, pw := range []string{password, "wrong-" + password} {
		conn := dialFrom(t, loopback(40, i), g.PlainAddress())
		answers = append(answers, control(conn, nil, "rec", pw, c.session))
		conn.Close()
	}
	for i, a := range answers {
		if a.Welcome || a.Frame == wire.CodeWrongPassword || (a.Frame != wire.CodeNameTaken && a.refusal() != "name-taken") {
			t.Errorf("resuming the sniffed session with password #%d: %s, want name-taken", i, a)
		}
	}
	if answers[0].String() != answers[1].String() {
		t.Errorf("resuming the sniffed session: the right password got %s, a wrong one %s", answers[0], answers[1])
	}
	if n := agent.Log.Count("registered"); n != 1 {
		t.Errorf("the agent registered %d times, want once: the sniffed session disturbed it", n)
	}
}
