package tunnel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/modules/broker"
)

// scaleAgent is a tildegate-agent process with many entries, its
// backbalance.bin, and its status server.
type scaleAgent struct {
	*e2e.Process
	path, statusAddr string
}

// startScaleAgent starts an agent with backbalance and a status server.
func startScaleAgent(t testing.TB, backbalance string) *scaleAgent {
	t.Helper()
	a := &scaleAgent{statusAddr: fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))}
	a.Process = env.StartAgent(t, "agent", backbalance, "-status-addr", a.statusAddr)
	a.path = a.Cmd.Args[2] // after "-config"
	return a
}

// agentEntries returns a backbalance.bin with an entry for each back
// entry b<i> of backEntries, for i in names, served by local at the
// gateway at gw, except those that local2 names, served there.
func agentEntries(names []int, gw, local string, local2 map[int]string) string {
	var b strings.Builder
	for _, i := range names {
		l := local
		if s, ok := local2[i]; ok {
			l = s
		}
		fmt.Fprintf(&b, "SSL /~~b%d=pw-%d#%s => %s;\n", i, i, gw, l)
	}
	return b.String()
}

// upTo returns 0 ... n-1.
func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// get fetches a path of the agent's status server into v and returns the
// HTTP status.
func (a *scaleAgent) get(t testing.TB, path string, v any) int {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get("http://" + a.statusAddr + path)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s of the agent: %v", path, err)
	}
	return res.StatusCode
}

// waitReady waits until the agent's /ready says that every entry is
// registered.
func (a *scaleAgent) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	e2e.WaitUntil(t, within, "the agent is ready", func() bool {
		var r struct {
			Ready bool `json:"ready"`
		}
		return a.get(t, "/ready", &r) == http.StatusOK && r.Ready
	})
}

// status returns the agent's entries by name.
func (a *scaleAgent) status(t testing.TB) map[string]agent.EntryStatus {
	t.Helper()
	var st agent.Status
	if code := a.get(t, "/status", &st); code != http.StatusOK {
		t.Fatalf("/status of the agent: %d", code)
	}
	m := make(map[string]agent.EntryStatus, len(st.Entries))
	for _, e := range st.Entries {
		m[e.Name] = e
	}
	return m
}

// gatewayAgents returns the gateway's back entries by name.
func gatewayAgents(t testing.TB, g *e2e.Gateway) map[string]broker.AgentStatus {
	t.Helper()
	var agents []broker.AgentStatus
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/tildegate/agents", g.Admin))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&agents); err != nil {
		t.Fatalf("/tildegate/agents: %v", err)
	}
	m := make(map[string]broker.AgentStatus, len(agents))
	for _, a := range agents {
		m[a.Name] = a
	}
	return m
}

// requestLoop sends requests to the back entries b<i> of g for i in
// names, round robin from a few clients, until stop is called, which
// returns how many were served and the failures. A request is served when
// the name's local service answers it.
func requestLoop(g *e2e.Gateway, names []int, service string) (stop func() (served int64, failures []string)) {
	var (
		served  atomic.Int64
		mu      sync.Mutex
		failed  []string
		wg      sync.WaitGroup
		stopped = make(chan struct{})
	)
	for w := range 4 {
		wg.Go(func() {
			c := env.Client()
			for i := w; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				name := fmt.Sprintf("b%d", names[i%len(names)])
				status, body, err := e2e.Get(c, g.URL("/~~"+name+"/hello"))
				if want := fmt.Sprintf("hello from %s, path /hello, prefix /~~%s", service, name); err != nil || status != http.StatusOK || body != want {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s at %s: %d %q %v", name, time.Now().Format("15:04:05.000"), status, body, err))
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		})
	}
	return func() (int64, []string) {
		close(stopped)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return served.Load(), failed
	}
}

// serveAll sends one request to each back entry b<i> of g for i in names,
// from a few clients at once, and fails the test for each that the local
// service named service does not answer.
func serveAll(t *testing.T, g *e2e.Gateway, names []int, service string) {
	t.Helper()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			c := env.Client()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(names) {
					return
				}
				name := fmt.Sprintf("b%d", names[k])
				status, body, err := e2e.Get(c, g.URL("/~~"+name+"/hello"))
				if want := fmt.Sprintf("hello from %s, path /hello, prefix /~~%s", service, name); err != nil || status != http.StatusOK || body != want {
					if failed.Add(1) <= 10 {
						t.Errorf("%s: %d %q %v", name, status, body, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d names did not serve their request", n, len(names))
	}
}

// startScaleGateway starts a gateway with balance as its balance.bin and
// the tunnel's default liveness settings: the tests' short ones would have
// each of thousands of registrations send an ALIVE and a ping every
// 500 ms, and drop those that a loaded machine leaves silent for 2 s.
func startScaleGateway(t testing.TB, balance string) *e2e.Gateway {
	t.Helper()
	g := e2e.StartGateway(t, env, balance)
	if err := g.Reload(scaleConfig(g)); err != nil {
		t.Fatal(err)
	}
	return g
}

// scaleConfig is the Caddyfile of startScaleGateway.
func scaleConfig(g *e2e.Gateway) string {
	return strings.ReplaceAll(g.Config(), e2e.TunnelBlock, "tunnel {\n\t\t\tback_wait 10s\n\t\t}")
}

// TestTwoThousandNames: one agent process with 2000 entries registers them
// all with a gateway of 2000 back entries, and a sample of the names
// serves a request through the tunnel. While requests run against a
// sample of names, a config reload through the admin API and a
// balance.bin edit that adds a name drop no registration and fail no
// request; then an edit of the agent's file that adds that name, removes
// one and changes another registers, closes and registers again those
// three, and touches no other registration.
func TestTwoThousandNames(t *testing.T) {
	const n = 2000
	local := e2e.LocalService(t, "scale").Listener.Addr().String()
	other := e2e.LocalService(t, "other").Listener.Addr().String()
	started := time.Now()
	g := startScaleGateway(t, backEntries(n))
	a := startScaleAgent(t, agentEntries(upTo(n), g.Address(), local, nil))
	a.waitReady(t, 3*time.Minute)
	gatewayCPU, _ := g.CPU()
	agentCPU, _ := a.CPU()
	t.Logf("%d entries registered %s after the gateway's start (CPU: gateway %s, agent %s)",
		n, time.Since(started).Round(time.Millisecond), gatewayCPU, agentCPU)
	before := gatewayAgents(t, g)
	for i := range n {
		if st := before[fmt.Sprintf("b%d", i)]; !st.Connected || st.Since == nil {
			t.Fatalf("the gateway's b%d: %+v", i, st)
		}
	}
	// Every tenth name: each first request makes the name's two
	// multiplexed back connections.
	var tenth []int
	for i := 0; i < n; i += 10 {
		tenth = append(tenth, i)
	}
	served := time.Now()
	serveAll(t, g, append(tenth, n-1), "scale")
	t.Logf("a first request to each of %d names: %s", len(tenth)+1, time.Since(served).Round(time.Millisecond))

	// A config reload and a balance.bin edit that adds a name, while
	// requests run against a sample of names.
	var sample []int
	for i := 50; i < n; i += 100 {
		sample = append(sample, i)
	}
	registered := a.Log.Count("\tregistered\t")
	accepted, _ := e2e.Metric(g.Metrics(t), "tildegate_registrations_total", "result", "accepted")
	stop := requestLoop(g, sample, "scale")
	reloading := time.Now()
	if err := g.Reload(strings.ReplaceAll(scaleConfig(g), `respond "gateway"`, `respond "gateway 2"`)); err != nil {
		t.Fatal(err)
	}
	t.Logf("config reload through the admin API: %s", time.Since(reloading).Round(time.Millisecond))
	edited := time.Now()
	replaceFile(t, g.BalancePath, backEntries(n+1))
	e2e.WaitUntil(t, time.Minute, "the gateway serves the name added to balance.bin", func() bool {
		status, _, err := e2e.Get(env.Client(), g.URL(fmt.Sprintf("/~~b%d/", n)))
		return err == nil && status == http.StatusBadGateway // no agent yet
	})
	t.Logf("balance.bin edit, from the write to the new name's first answer: %s", time.Since(edited).Round(time.Millisecond))
	time.Sleep(time.Second) // requests after the reloads too
	checkKept(t, g, before, upTo(n), "after the reloads")
	if now, _ := e2e.Metric(g.Metrics(t), "tildegate_registrations_total", "result", "accepted"); now != accepted {
		t.Errorf("the gateway accepted %v registrations during the reloads", now-accepted)
	}
	if now := a.Log.Count("\tregistered\t"); now != registered {
		t.Errorf("the agent registered %d times during the gateway's reloads", now-registered)
	}
	count, failures := stop()
	wantServed(t, count, failures, "during the gateway's reloads")

	// The agent's file: b<n> added, b1 removed, b2 served elsewhere.
	agentBefore := a.status(t)
	stop = requestLoop(g, sample, "scale")
	unchanged := append([]int{0}, upTo(n)[3:]...)
	b2 := a.Log.Count("\tregistered\t", `"name": "b2"`)
	edited = time.Now()
	replaceFile(t, a.path, agentEntries(append(unchanged, 2, n), g.Address(), local, map[int]string{2: other}))
	a.Log.WaitFor(time.Minute, b2, "\tregistered\t", `"name": "b2"`)
	a.Log.WaitFor(time.Minute, 0, "\tregistered\t", fmt.Sprintf(`"name": "b%d"`, n))
	t.Logf("agent file edit, from the write to the changed entries' registrations: %s; in the agent's log, from reading the file: %s",
		time.Since(edited).Round(time.Millisecond), a.reloadTime(t))
	if st := a.status(t); st["b1"].Name != "" || st["b2"].State != agent.StateRegistered || !st["b2"].RegisteredSince.After(agentBefore["b2"].RegisteredSince) {
		t.Errorf("the agent's status after its reload: b1 %+v, b2 %+v", st["b1"], st["b2"])
	}
	e2e.WaitUntil(t, time.Minute, "the gateway sees b1's agent leave", func() bool { return !gatewayAgents(t, g)["b1"].Connected })
	serveAll(t, g, []int{2}, "other")
	serveAll(t, g, []int{n}, "scale")
	count, failures = stop()
	wantServed(t, count, failures, "during the agent's reload")
	agentAfter := a.status(t)
	for _, i := range unchanged {
		name := fmt.Sprintf("b%d", i)
		if was, now := agentBefore[name], agentAfter[name]; now.State != agent.StateRegistered || !now.RegisteredSince.Equal(was.RegisteredSince) ||
			now.Registrations.Registered != was.Registrations.Registered {
			t.Errorf("the agent's %s was registered again: before %+v, after %+v", name, was, now)
		}
	}
	if now := a.Log.Count("\tregistered\t"); now != registered+2 {
		t.Errorf("the agent registered %d times during its reload, want 2 (b2 and b%d)", now-registered, n)
	}
	checkKept(t, g, before, unchanged, "after the agent's reload")
}

// replaceFile replaces the file at path as an editor does: a new file
// renamed over the old one, so that no reader sees half of it.
func replaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// reloadTime returns the time from the agent's last "configuration
// reloaded" to its last registration, by its log's timestamps.
func (a *scaleAgent) reloadTime(t testing.TB) time.Duration {
	t.Helper()
	last := func(part string) time.Time {
		lines := a.Log.Lines(part)
		if len(lines) == 0 {
			t.Fatalf("the agent logged no %q", part)
		}
		at, err := time.Parse(time.RFC3339Nano, strings.SplitN(lines[len(lines)-1], "\t", 2)[0])
		if err != nil {
			t.Fatalf("no timestamp in the agent's log line %q: %v", lines[len(lines)-1], err)
		}
		return at
	}
	return last("\tregistered\t").Sub(last("configuration reloaded"))
}

// checkKept fails the test for each back entry b<i>, i in names, whose
// registration on g is not the one in before.
func checkKept(t testing.TB, g *e2e.Gateway, before map[string]broker.AgentStatus, names []int, when string) {
	t.Helper()
	after := gatewayAgents(t, g)
	lost := 0
	for _, i := range names {
		name := fmt.Sprintf("b%d", i)
		was, now := before[name], after[name]
		if !now.Connected || now.Since == nil || !now.Since.Equal(*was.Since) {
			if lost++; lost <= 10 {
				t.Errorf("%s, the gateway's %s is not the same registration: before %+v, after %+v", when, name, was, now)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%s, %d of %d registrations are not the same", when, lost, len(names))
	}
}

// wantServed fails the test when requests failed, or none was served.
func wantServed(t *testing.T, served int64, failures []string, when string) {
	t.Helper()
	t.Logf("%d requests served %s", served, when)
	if served == 0 {
		t.Errorf("no request served %s", when)
	}
	for i, f := range failures {
		if i == 10 {
			t.Errorf("and %d more", len(failures)-10)
			break
		}
		t.Errorf("a request failed %s: %s", when, f)
	}
}
