package scale

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// stormAgents is how many agents the restart storm test runs, and
// stormRate the gateway's handshake rate in it: low enough that they
// cannot all come back in the first seconds.
const (
	stormAgents = 500
	stormRate   = 100
)

// TestRestartStorm restarts a gateway that 500 agents are registered
// with. Must hold: the gateway takes their handshakes at its rate and
// answers the rest busy (503 with Retry-After), which counts against no
// throttle budget; the agents come back when told, none gives up, and all
// are registered and serve requests again within a minute.
func TestRestartStorm(t *testing.T) {
	g := e2e.NewGateway(t, env, backEntries(stormAgents))
	g.Tunnel = fmt.Sprintf("tunnel {\n\t\t\thandshake_rate %d\n\t\t}", stormRate)
	g.WriteConfig()
	g.Start()
	l := startLoad(t, g, stormAgents)
	took, first := l.waitRegistered(stormAgents, time.Minute)
	t.Logf("%d agents registered in %s; %d deferred by the busy gateway", stormAgents, took.Round(time.Millisecond), first.Deferred)

	g.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for l.last().Registered > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the agents did not notice the gateway stopped: %+v", l.last())
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.Start()
	took, after := l.waitRegistered(stormAgents, time.Minute)
	deferred := after.Deferred - first.Deferred
	t.Logf("after the restart, all %d registered again in %s: %d handshakes deferred, %d refused otherwise",
		stormAgents, took.Round(time.Millisecond), deferred, after.Refused-first.Refused)
	if min := time.Duration(float64(stormAgents)/stormRate*0.8) * time.Second; took < min {
		t.Errorf("all registered in %s, faster than the handshake rate allows (%s)", took, min)
	}
	if deferred == 0 {
		t.Error("no handshake was deferred: the gateway took them all at once")
	}
	if after.Refused != first.Refused {
		t.Errorf("%d registrations refused other than busy", after.Refused-first.Refused)
	}
	m := metrics(t, g, "tildegate_registrations_total")
	if m[`tildegate_registrations_total{result="busy"}`] == 0 {
		t.Errorf("the gateway counts no busy refusal: %v", m)
	}
	if n := m[`tildegate_registrations_total{result="throttled"}`]; n > 0 {
		t.Errorf("%v handshakes throttled: busy refusals spent the throttle's budgets", n)
	}
	if lines := g.Log.Count("agent connection refused", `"code":"busy"`); lines == 0 || lines > 5 {
		t.Errorf("the gateway logged %d lines of busy refusals, want a few for them all", lines)
	}
	client := env.Client()
	for i := 0; i < stormAgents; i += stormAgents / 10 {
		status, body, err := e2e.Get(client, g.URL(fmt.Sprintf("/~~b%d/after-storm", i)))
		if err != nil || status != http.StatusOK {
			t.Errorf("b%d after the storm: %d %q %v", i, status, body, err)
		}
	}
}
