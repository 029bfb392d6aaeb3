package attack

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// TestStormFromOneAddress releases 200 wrong-password handshakes at once
// from 127.0.0.1 against one name. Must hold: at most 5 get a verdict on
// their password (the budget of one source at one name) and none is
// welcomed; every other one is refused by the throttle with HTTP 429 and
// Retry-After before any 101; the gateway logs a handful of refusal lines,
// not 200; and neither the right password nor any guess appears in its log.
func TestStormFromOneAddress(t *testing.T) {
	t.Parallel()
	const right = "Storm-Right-7f3a"
	g := e2e.StartGateway(t, env, "/~~storm="+right+"#:*;\n")
	start := time.Now()
	answers := storm(200,
		func(int) net.Conn { return dialFrom(t, "127.0.0.1", g.PlainAddress()) },
		func(i int, c net.Conn) answer {
			return control(c, nil, "storm", fmt.Sprintf("wrong-guess-%03d", i), nil)
		})
	elapsed := time.Since(start)
	counts := tally(answers)
	t.Logf("200 wrong passwords at once from one address in %s: %v", elapsed.Round(time.Millisecond), counts)
	budget := 5 + int(elapsed/(2*time.Minute))
	if counts["verdict"] > budget || counts["verdict"] < 1 {
		t.Errorf("%d handshakes got a verdict on their password, want 1 to %d", counts["verdict"], budget)
	}
	if counts["verdict"]+counts["throttled"] != len(answers) {
		t.Errorf("answers other than a verdict or a 429 with Retry-After: %v", counts)
	}
	for _, a := range answers {
		if a.Welcome {
			t.Fatal("a wrong password was welcomed")
		}
	}
	time.Sleep(200 * time.Millisecond) // the last log lines
	if lines := refusedLines(g, "storm"); len(lines) > 4 || len(lines) == 0 {
		t.Errorf("the gateway logged %d refusal lines for 200 attempts, want 1 to 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	assertAbsent(t, "the gateway's log", g.Log.String(), right, "wrong-guess")
}

// TestStormFromManyAddresses releases one wrong-password handshake from
// each of 200 loopback addresses at once against one name. Must hold: at
// most 10 get a verdict on their password (the name's budget, plus one per
// minute the test took), the others a 429 with Retry-After; the name's
// budget then refuses even a new address; and another name is not
// affected: its own agent registers at once.
func TestStormFromManyAddresses(t *testing.T) {
	t.Parallel()
	local := e2e.LocalService(t, "calm")
	g := e2e.StartGateway(t, env, "/~~crowd=Crowd-Right-1#:*;\n/~~calm=calm-pw#:*;\n")
	start := time.Now()
	answers := storm(200,
		func(i int) net.Conn { return dialFrom(t, loopback(1, i), g.PlainAddress()) },
		func(i int, c net.Conn) answer {
			return control(c, nil, "crowd", fmt.Sprintf("crowd-guess-%03d", i), nil)
		})
	counts := tally(answers)
	t.Logf("200 wrong passwords at once from 200 addresses in %s: %v", time.Since(start).Round(time.Millisecond), counts)
	if budget := 10 + int(time.Since(start)/time.Minute); counts["verdict"] > budget || counts["verdict"] < 1 {
		t.Errorf("%d handshakes got a verdict on their password, want 1 to %d", counts["verdict"], budget)
	}
	if counts["verdict"]+counts["throttled"] != len(answers) {
		t.Errorf("answers other than a verdict or a 429 with Retry-After: %v", counts)
	}
	if a := control(dialFrom(t, loopback(1, 230), g.PlainAddress()), nil, "crowd", "Crowd-Right-1", nil); !a.throttled() {
		t.Errorf("a new address with the right password after the name's budget was spent: %s, want 429", a)
	}

	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("calm", "calm-pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "calm")
	if status, body, err := e2e.Get(env.Client(), g.URL("/~~calm/hello")); err != nil || status != http.StatusOK {
		t.Errorf("the other name after the storm: %d %q %v", status, body, err)
	}
	assertAbsent(t, "the gateway's log", g.Log.String(), "Crowd-Right-1", "crowd-guess")
}

// comparable is an answer with what varies between any two answers (the
// date) left out.
func comparable(a answer) string {
	h := a.Header.Clone()
	h.Del("Date")
	var b strings.Builder
	_ = h.Write(&b)
	return fmt.Sprintf("%d\n%s\n%s", a.Status, b.String(), a.Body)
}

// TestNameTakenIsNoOracle: a real agent holds a name; hand-driven
// handshakes with the right password and with wrong ones try to take it,
// over TLS and plain HTTP, more often than any budget allows. Must hold:
// every one is refused name-taken (409) before any 101, with the very same
// status, headers and body whatever the password, so the refusal says
// nothing about the password; no wrong-password verdict is logged; and the
// agent keeps the name.
func TestNameTakenIsNoOracle(t *testing.T) {
	t.Parallel()
	const right = "Held-Right-2b"
	local := e2e.LocalService(t, "held")
	g := e2e.StartGateway(t, env, "/~~held="+right+"#:*;\n")
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("held", right, g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "held")

	var answers []answer
	var passwords []string
	for i := range 8 {
		for _, pw := range []string{right, fmt.Sprintf("held-guess-%d", i)} {
			var a answer
			if i%2 == 0 {
				c, cs := dialTLSFrom(t, "127.0.0.1", g.Address())
				a = control(c, cs, "held", pw, nil)
				c.Close()
			} else {
				a = control(dialFrom(t, "127.0.0.1", g.PlainAddress()), nil, "held", pw, nil)
			}
			answers = append(answers, a)
			passwords = append(passwords, map[bool]string{true: "the right password", false: "a wrong one"}[pw == right])
		}
	}
	// TLS and plain answers differ in what the server adds (Alt-Svc):
	// each is compared with the first of its transport.
	want := []string{comparable(answers[0]), comparable(answers[2])}
	for i, a := range answers {
		if a.Status != http.StatusConflict || a.refusal() != wire.CodeNameTaken.String() {
			t.Errorf("attempt %d with %s: %s, want 409 name-taken", i, passwords[i], a)
		}
		if got := comparable(a); got != want[(i/2)%2] {
			t.Errorf("attempt %d with %s was answered %q, but the first over the same transport, with the right password, %q",
				i, passwords[i], got, want[(i/2)%2])
		}
	}
	if n := g.Log.Count("wrong-password"); n > 0 {
		t.Errorf("the gateway logged %d wrong-password verdicts for a held name", n)
	}
	if n := g.Log.Count("agent registration closed"); n > 0 || agent.Log.Count("registered") != 1 {
		t.Errorf("the agent lost its name: %d registrations closed", n)
	}
	if status, _, err := e2e.Get(env.Client(), g.URL("/~~held/hello")); err != nil || status != http.StatusOK {
		t.Errorf("the held name after the attempts: %d %v", status, err)
	}
	assertAbsent(t, "the gateway's log", g.Log.String(), right, "held-guess")
}
