package attack

import (
	"net/http"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestLockoutBehindSameAddress: an attacker shares the address 127.0.0.5
// with a legitimate agent that holds name A through a path the test can
// cut and hold. While A is held, the attacker's guesses at A are refused
// name-taken and cost nothing; once the path drops, the attacker spends A's
// budgets (its own from 127.0.0.5, and the name's from other addresses)
// and the budget of name B from 127.0.0.5. Must hold: (a) a real agent for
// name C from 127.0.0.5 still registers at once: failures at other names
// do not lock the address out; (b) when the path comes back, the agent of
// A resumes its session at once although A's budgets are spent: a valid
// resume proof goes past them, while the attacker is still refused.
func TestLockoutBehindSameAddress(t *testing.T) {
	t.Parallel()
	const shared, nameBurst = "127.0.0.5", 10
	local := e2e.LocalService(t, "lock").Listener.Addr().String()
	g := e2e.StartGateway(t, env, "/~~locka=pw-a#:*;\n/~~lockb=pw-b#:*;\n/~~lockc=pw-c#:*;\n")
	r := newRelay(t, g.Address(), shared, false)
	agentA := env.StartAgent(t, "agent A", e2e.BackbalanceLine("locka", "pw-a", r.addr(), local), "-bind", shared)
	agentA.Log.WaitFor(20*time.Second, 0, "registered", "locka")

	attack := func(from, name string) answer {
		return control(dialFrom(t, from, g.PlainAddress()), nil, name, "lock-guess", nil)
	}
	for i := range 8 {
		if a := attack(shared, "locka"); a.refusal() != "name-taken" {
			t.Errorf("guess %d at a held name: %s, want name-taken", i, a)
		}
	}

	// The path drops and holds the agent's attempts to come back.
	r.hold()
	r.cut()
	g.Log.WaitFor(5*time.Second, 0, "agent registration closed", `"name":"locka"`)
	verdicts := map[string]int{}
	for _, name := range []string{"locka", "lockb"} {
		for i := range 8 {
			switch a := attack(shared, name); {
			case a.verdict():
				verdicts[name]++
			case !a.throttled():
				t.Errorf("guess %d at %s from %s: %s", i, name, shared, a)
			}
		}
	}
	// The agent's own address is spared the name's budget (its own
	// budget still applies), so guesses from elsewhere spend all of it.
	for i := range nameBurst + 2 {
		if a := attack(loopback(7, i), "locka"); a.verdict() {
			verdicts["locka from elsewhere"]++
		} else if !a.throttled() {
			t.Errorf("guess at locka from %s: %s", loopback(7, i), a)
		}
	}
	t.Logf("password verdicts the attacker got: %v", verdicts)
	if verdicts["locka"] != 5 || verdicts["lockb"] != 5 || verdicts["locka from elsewhere"] != nameBurst {
		t.Errorf("verdicts %v: want 5 at each name from %s and %d at locka from elsewhere", verdicts, shared, nameBurst)
	}
	for _, from := range []string{shared, loopback(7, 100)} {
		if a := attack(from, "locka"); !a.throttled() {
			t.Errorf("from %s after the budgets were spent: %s, want 429", from, a)
		}
	}

	// (a) Another name from the same address.
	agentC := env.StartAgent(t, "agent C", e2e.BackbalanceLine("lockc", "pw-c", g.Address(), local), "-bind", shared)
	agentC.Log.WaitFor(20*time.Second, 0, "registered", "lockc")

	// (b) The path comes back: the held attempt of A resumes.
	released := time.Now()
	r.release()
	g.Log.WaitFor(15*time.Second, 0, "agent registered", `"name":"locka"`, `"resumed":true`)
	t.Logf("agent A resumed %s after the path came back", time.Since(released).Round(time.Millisecond))
	if d := time.Since(released); d > 10*time.Second {
		t.Errorf("agent A resumed %s after the path came back, want at once", d)
	}
	agentA.Log.WaitFor(5*time.Second, 0, "registered", `"resumed": true`)
	for _, name := range []string{"locka", "lockc"} {
		if status, body, err := e2e.Get(env.Client(), g.URL("/~~"+name+"/hello")); err != nil || status != http.StatusOK {
			t.Errorf("%s after the attack: %d %q %v", name, status, body, err)
		}
	}
	if a := attack(shared, "locka"); a.refusal() != "name-taken" {
		t.Errorf("a guess at locka once it is held again: %s, want name-taken", a)
	}
	assertAbsent(t, "the gateway's log", g.Log.String(), "pw-a", "pw-b", "pw-c", "lock-guess")
}
