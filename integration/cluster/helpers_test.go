package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// The cluster the tests build: a host name that DNS answers with the
// gateways' loopback addresses, one address per gateway.
const (
	host            = "gw.tildegate.test"
	password        = "cluster-pw"
	resolveInterval = time.Second
)

// ips are the gateways' addresses.
var ips = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

// backBalance is the gateways' balance.bin: the back entries names.
func backBalance(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "SSL /~~%s=%s#:*;\n", n, password)
	}
	return b.String()
}

// startCluster starts a gateway at each of binds, serving the back entry
// "home", and a DNS server that answers the host name with all their
// addresses.
func startCluster(t testing.TB, binds ...[]string) (*e2e.Cluster, *e2e.DNSServer) {
	t.Helper()
	d := e2e.StartDNS(t)
	c := e2e.StartCluster(t, env, e2e.ClusterSpec{Host: host, Balance: backBalance("home"), Binds: binds})
	var all []string
	for _, b := range binds {
		all = append(all, b...)
	}
	d.Set(host, all...)
	return c, d
}

// threeGateways is the usual cluster: one gateway at each of ips.
func threeGateways(t testing.TB) (*e2e.Cluster, *e2e.DNSServer) {
	t.Helper()
	return startCluster(t, ips[:1], ips[1:2], ips[2:])
}

// agent is a tildegate-agent that finds the cluster's gateways through
// the test's DNS server, re-resolving every resolveInterval, and serves
// /ready and /status.
type agent struct {
	*e2e.Process
	statusAddr string
}

// entry is an agent entry for name on the cluster, served by local (an
// HTTP service) and rdp (an RDP service, or "" for none), through the
// proxies given as host:port.
func entry(c *e2e.Cluster, name, local, rdp string, proxies ...string) string {
	return entryAt(c.Gateway(), name, local, rdp, proxies...)
}

// entryAt is entry with the gateway given as host:port.
func entryAt(gateway, name, local, rdp string, proxies ...string) string {
	var via, rdpPort string
	for _, p := range proxies {
		via += " -> " + p
	}
	if rdp != "" {
		rdpPort = " RDPPORT " + rdp
	}
	return fmt.Sprintf("SSL /~~%s=%s#%s%s => %s%s;\n", name, password, gateway, via, local, rdpPort)
}

// startAgent starts an agent with backbalance, trusting the cluster's CA
// and asking d for the gateways' addresses.
func startAgent(t testing.TB, c *e2e.Cluster, d *e2e.DNSServer, backbalance string, args ...string) *agent {
	t.Helper()
	a := &agent{statusAddr: fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))}
	args = append([]string{"-ca", c.CARoot(), "-dns", d.Addr, "-resolve-interval", resolveInterval.String(),
		"-status-addr", a.statusAddr}, args...)
	a.Process = env.StartAgent(t, "agent", backbalance, args...)
	return a
}

// get fetches a path of the agent's status server.
func (a *agent) get(path string) (int, []byte, error) {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + a.statusAddr + path)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// waitReady waits until the agent's /ready says that every entry is
// registered on at least one gateway.
func (a *agent) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	e2e.WaitUntil(t, within, "the agent is ready", func() bool {
		status, _, err := a.get("/ready")
		return err == nil && status == http.StatusOK
	})
}

// status returns the agent's /status.
func (a *agent) status(t testing.TB) []byte {
	t.Helper()
	status, body, err := a.get("/status")
	if err != nil || status != http.StatusOK {
		t.Fatalf("the agent's /status: %d %v", status, err)
	}
	return body
}

// gatewayStates returns the states that the agent's /status gives the
// gateway at addr: those of every object of the status that names addr
// and has a "state".
func (a *agent) gatewayStates(t testing.TB, addr string) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(a.status(t), &doc); err != nil {
		t.Fatalf("the agent's /status: %v", err)
	}
	var states []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			names := false
			for _, f := range v {
				if s, ok := f.(string); ok && s == addr {
					names = true
				}
			}
			if s, ok := v["state"].(string); ok && names {
				states = append(states, s)
			}
			for k, f := range v {
				// Also a map from addresses to their state.
				if m, ok := f.(map[string]any); ok && k == addr {
					if s, ok := m["state"].(string); ok {
						states = append(states, s)
					}
				}
				walk(f)
			}
		case []any:
			for _, f := range v {
				walk(f)
			}
		}
	}
	walk(doc)
	return states
}

// waitGatewayState waits until the agent's /status gives the gateway at
// addr a state that ok accepts, and returns how long that took.
func (a *agent) waitGatewayState(t testing.TB, addr string, within time.Duration, what string, ok func(states []string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		states := a.gatewayStates(t, addr)
		if ok(states) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's /status does not say that %s %s within %s; states %q; /status:\n%s", addr, what, within, states, a.status(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registered accepts states that are all "registered".
func registered(states []string) bool {
	for _, s := range states {
		if s != "registered" {
			return false
		}
	}
	return len(states) > 0
}

// notRegistered accepts states of which none is "registered".
func notRegistered(states []string) bool {
	for _, s := range states {
		if s == "registered" {
			return false
		}
	}
	return len(states) > 0
}

// waitAllConnected waits until every gateway of c shows name connected.
func waitAllConnected(t testing.TB, c *e2e.Cluster, name string, within time.Duration) {
	t.Helper()
	for _, g := range c.Gateways {
		g.WaitConnected(name, true, within)
	}
}

// registeredLogged counts the registrations of name a gateway has logged.
func registeredLogged(g *e2e.ClusterGateway, name string) int {
	return g.Log.Count(`"msg":"agent registered"`, `"name":"`+name+`"`)
}

// closedLogged counts the registrations of name a gateway has logged as
// closed.
func closedLogged(g *e2e.ClusterGateway, name string) int {
	return g.Log.Count(`"msg":"agent registration closed"`, `"name":"`+name+`"`)
}

// load sends requests for path to one gateway in a loop, counting those
// served and those that failed, until stopped.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errors     []string
	stop       chan struct{}
	done       chan struct{}
}

// startLoad starts a load on g; it stops when the test ends at the
// latest.
func startLoad(t testing.TB, g *e2e.ClusterGateway, path string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	client := g.Client()
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			status, body, err := e2e.Get(client, g.URL(path))
			if err == nil && status == http.StatusOK && strings.HasPrefix(body, "hello from") {
				l.ok.Add(1)
				continue
			}
			l.failed.Add(1)
			l.mu.Lock()
			l.errors = append(l.errors, fmt.Sprintf("%s %s: %d %q %v", g.Instance, time.Now().Format("15:04:05.000"), status, body, err))
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.end)
	return l
}

// end stops the load and waits for its last request.
func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// waitServed waits until the load has served n more requests than it had
// when asked.
func (l *load) waitServed(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	target := l.ok.Load() + n
	e2e.WaitUntil(t, within, fmt.Sprintf("%d more requests served", n), func() bool { return l.ok.Load() >= target })
}

// check fails the test if a request of the load failed.
func (l *load) check(t testing.TB) {
	t.Helper()
	l.end()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) > 0 {
		t.Errorf("%d of %d requests failed, the first ones:\n%s", len(l.errors), int64(len(l.errors))+l.ok.Load(),
			strings.Join(l.errors[:min(len(l.errors), 5)], "\n"))
	}
}

// serves checks that a request for /~~name/hello through g reaches the
// local service.
func serves(t testing.TB, g *e2e.ClusterGateway, name string) {
	t.Helper()
	status, body, err := e2e.Get(g.Client(), g.URL("/~~"+name+"/hello"))
	if err != nil || status != http.StatusOK || !strings.HasPrefix(body, "hello from") {
		t.Fatalf("%s: /~~%s/hello: %d %q %v", g.Instance, name, status, body, err)
	}
}
