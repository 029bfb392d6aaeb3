package tunnel

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestIdleRDPDoesNotStarveTheWeb: RDP connections arrive unauthenticated
// and may sit idle; 80 of them through one agent, with max_sessions 64 for
// the web, must not make the name's web requests fail: the two kinds have
// session budgets of their own.
func TestIdleRDPDoesNotStarveTheWeb(t *testing.T) {
	const idleRDP, requests = 80, 60
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	rdp := e2e.EchoServer(t)
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	if err := g.Reload(strings.Replace(g.Config(), "tunnel {", "tunnel {\n\t\t\tmax_sessions 64", -1)); err != nil {
		t.Fatal(err)
	}
	agent := env.StartAgent(t, "agent", fmt.Sprintf("SSL /~~home=pw#%s => %s RDPPORT %s;\n", g.Address(), local, rdp))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")

	// Idle RDP sessions from several addresses, each past its Connection
	// Request, so that each holds an RDP session through the agent.
	for i := range idleRDP {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 3, byte(i%16+1))}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", g.Address())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cr := e2e.RDPConnectionRequest("Cookie: mstshash=/~~home\r\n")
		if _, err := c.Write(cr); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, len(cr)-len("Cookie: mstshash=/~~home\r\n"))); err != nil {
			t.Fatalf("RDP session %d did not reach the RDP service: %v", i+1, err)
		}
	}

	client := env.Client()
	var wg sync.WaitGroup
	failed := make(chan string, requests)
	for range requests {
		wg.Go(func() {
			code, body, err := e2e.Get(client, g.URL("/~~home/hello"))
			if err != nil || code != http.StatusOK {
				failed <- fmt.Sprintf("%d %q %v", code, body, err)
			}
		})
	}
	wg.Wait()
	close(failed)
	n := 0
	for f := range failed {
		if n++; n <= 3 {
			t.Errorf("web request failed while %d RDP sessions were idle: %s", idleRDP, f)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d web requests failed", n, requests)
	}
}
