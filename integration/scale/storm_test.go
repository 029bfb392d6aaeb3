package scale

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	l := startLoad(t, g, stormAgents, "-per-process", strconv.Itoa(stormAgents/2)) // two processes, as at scale
	took, first := l.waitRegistered(stormAgents, time.Minute)
	t.Logf("%d agents registered in %s; %d deferred by the busy gateway", stormAgents, took.Round(time.Millisecond), first.Deferred)

	g.Stop()
	e2e.WaitUntil(t, 30*time.Second, "the agents notice the gateway stopped", func() bool { return l.last().Registered == 0 })
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
	m := g.Metrics(t)
	if n, _ := e2e.Metric(m, "tildegate_registrations_total", "result", "busy"); n == 0 {
		t.Error("the gateway counts no busy refusal")
	}
	if n, _ := e2e.Metric(m, "tildegate_registrations_total", "result", "throttled"); n > 0 {
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

// TestAgentHonoursBusy runs the tildegate-agent binary with 5 entries
// against a gateway that starts one handshake a second. Must hold: the
// agent logs the busy refusals and that it waits as the gateway asked,
// registers every entry, no sooner than the rate allows, and is never
// throttled.
func TestAgentHonoursBusy(t *testing.T) {
	const entries = 5
	g := e2e.NewGateway(t, env, backEntries(entries))
	g.Tunnel = "tunnel {\n\t\t\thandshake_rate 1\n\t\t}"
	g.WriteConfig()
	g.Start()
	local := e2e.LocalService(t, "busy").Listener.Addr().String()
	var lines strings.Builder
	for i := range entries {
		lines.WriteString(e2e.BackbalanceLine(fmt.Sprintf("b%d", i), fmt.Sprintf("pw-%d", i), g.Address(), local))
	}
	start := time.Now()
	agent := env.StartAgent(t, "agent", lines.String())
	e2e.WaitUntil(t, time.Minute, "every entry registered", func() bool { return agent.Log.Count("registered") >= entries })
	took := time.Since(start)
	deferred := agent.Log.Lines("registration deferred: busy")
	if len(deferred) == 0 {
		t.Fatal("the agent logged no busy refusal")
	}
	t.Logf("%d entries registered in %s at one handshake a second, after %d busy refusals; the first: %s",
		entries, took.Round(time.Millisecond), len(deferred), deferred[0])
	for _, line := range deferred {
		if !strings.Contains(line, "as the gateway asked") {
			t.Errorf("a busy refusal the agent does not say it waits out: %s", line)
			break
		}
	}
	if took < (entries-2)*time.Second {
		t.Errorf("%d entries registered in %s, faster than one handshake a second", entries, took)
	}
	if n := agent.Log.Count("throttled"); n > 0 {
		t.Errorf("the agent was throttled %d times", n)
	}
	if status, body, err := e2e.Get(env.Client(), g.URL("/~~b4/hello")); err != nil || status != http.StatusOK {
		t.Errorf("a request through the last entry: %d %q %v", status, body, err)
	}
}
