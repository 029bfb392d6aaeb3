package tunnel

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// waitBackConnections waits until the admin API shows the agent of name
// connected with a number of multiplexed back connections that ok likes.
func waitBackConnections(t *testing.T, g *e2e.Gateway, name string, within time.Duration, what string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := agentStatus(t, g, name)
		if st.Connected && ok(st.BackConnections) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; status %+v", what, within, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIdleNameKeepsNoBackConnections: a name whose last session ended more
// than back_idle_timeout ago keeps no multiplexed back connection, only
// its control connection; its next request opens one and is served; and a
// session held open (a websocket) keeps them.
func TestIdleNameKeepsNoBackConnections(t *testing.T) {
	local := e2e.LocalService(t, "idle").Listener.Addr().String()
	g := e2e.StartGateway(t, env, "SSL /~~idle=pw#:*;\n")
	// Idle after 1 s; the reverse proxy's pooled sessions close after
	// 500 ms without a request.
	cfg := strings.Replace(g.Config(), "tunnel {", "tunnel {\n\t\t\tback_idle_timeout 1s", -1)
	cfg = strings.Replace(cfg, "balance_file "+g.BalancePath, "balance_file "+g.BalancePath+" {\n\t\t\ttransport http {\n\t\t\t\tkeepalive 500ms\n\t\t\t}\n\t\t}", -1)
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("idle", "pw", g.Address(), local))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "idle")
	client := env.Client()
	waitServed(t, g.URL("/~~idle/hello"), 5*time.Second)
	waitBackConnections(t, g, "idle", 5*time.Second, "back connections while in use", func(n int) bool { return n > 0 })

	waitBackConnections(t, g, "idle", 10*time.Second, "no back connection once idle", func(n int) bool { return n == 0 })
	client.CloseIdleConnections()
	start := time.Now()
	if status, _, err := e2e.Get(client, g.URL("/~~idle/hello")); err != nil || status != http.StatusOK {
		t.Fatalf("the first request after idle: %d %v", status, err)
	}
	cold := time.Since(start)
	start = time.Now()
	if status, _, err := e2e.Get(client, g.URL("/~~idle/hello")); err != nil || status != http.StatusOK {
		t.Fatalf("the next request: %d %v", status, err)
	}
	warm := time.Since(start)
	t.Logf("first request after idle %s, the next %s", cold.Round(time.Microsecond), warm.Round(time.Microsecond))
	if cold > 2*time.Second {
		t.Errorf("the first request after idle took %s", cold)
	}

	// A websocket keeps the name in use past the idle timeout.
	ws := env.DialEcho(t, g.URL("/~~idle/ws"))
	defer ws.CloseNow()
	time.Sleep(2500 * time.Millisecond) // past the idle timeout
	waitBackConnections(t, g, "idle", time.Second, "back connections while a websocket is open", func(n int) bool { return n > 0 })
	if got, err := e2e.Echo(ws, "still"); err != nil || got != "STILL" {
		t.Errorf("the websocket after the idle timeout: %q, %v", got, err)
	}
	if n := agent.Log.Count("registered"); n != 1 {
		t.Errorf("the agent registered %d times, want once: idling must not drop the registration", n)
	}
}
