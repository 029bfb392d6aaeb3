package proxy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// BenchmarkBackConnection measures what a cascade of two proxies (NTLM,
// then Basic) adds to opening a back connection, and how reuse hides it.
// "new" requests make the local service close the connection after each
// answer, so every request waits for a fresh back connection through the
// chain (the agents keep no spares); "reused" requests keep theirs alive.
func BenchmarkBackConnection(b *testing.B) {
	ntlm := startSquid(b, ntlmAuth, `corp\bench:Ntlm-pw-b`)
	basic := startSquid(b, basicAuth, "bench:Basic-pw-b")
	g := e2e.StartGateway(b, env, gatewayBalance("direct", "cascade"))
	local := e2e.LocalService(b, "bench").Listener.Addr().String()
	agents := map[string]*e2e.Process{
		"direct": env.StartAgent(b, "direct agent", e2e.BackbalanceLine("direct", entryPassword, g.Address(), local), "-spare", "0"),
		"cascade": env.StartAgent(b, "cascade agent", chainEntry("cascade", g, local,
			hop{ntlm, `corp\bench:Ntlm-pw-b`, ""}, hop{basic, "bench:Basic-pw-b", ""}), "-spare", "0"),
	}
	for name, a := range agents {
		a.Log.WaitFor(10*time.Second, 0, registeredLine, name)
	}
	c := env.Client()
	for _, name := range []string{"direct", "cascade"} {
		for _, kind := range []struct{ label, path string }{{"new", "/close"}, {"reused", "/hello"}} {
			b.Run(fmt.Sprintf("%s/%s", name, kind.label), func(b *testing.B) {
				url := g.URL("/~~" + name + kind.path)
				for b.Loop() {
					if status, body, err := e2e.Get(c, url); err != nil || status != http.StatusOK {
						b.Fatalf("%s: %d %q %v", url, status, body, err)
					}
				}
			})
		}
	}
}
