package scale

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/modules/broker"
)

// BenchmarkScale measures a gateway with SCALE_NAMES back entries (default
// 10,000) served by as many agents of loadagents, with the default tunnel
// settings, and prints:
//   - startup: from starting the gateway to its answer for the last name;
//   - KiB/name: its resident memory per configured name, against a gateway
//     with one, before any agent;
//   - register: from starting the agents until all are registered;
//   - KiB/agent, heap-KiB/agent and stack-KiB/agent: resident memory, Go
//     heap in use and goroutine stacks per connected agent, against before
//     they came; KiB/agent-idle, the resident memory per agent again after
//     SCALE_IDLE; and KiB/agent-steady, heap-KiB/agent-steady and
//     stack-KiB/agent-steady once the runtime's first collection after
//     SCALE_IDLE (forced within 2 minutes of the last one) has freed the
//     garbage of their handshakes and the freed pages went back to the
//     system: what a gateway that has been idle a few minutes holds; and
//     live-KiB/agent, its live heap per agent, from a collection asked
//     for before the agents came and after;
//   - idle-cpu: the gateway's CPU with all agents connected and idle, in
//     percent of a core, over SCALE_IDLE (default 1m), at the alive
//     interval SCALE_ALIVE (default 20s, dead after three);
//   - metrics: one scrape of /metrics, its size and the gateway's CPU for
//     it (from its start to 5s after, less the idle rate), which includes
//     collecting the garbage it leaves;
//   - reload: a POST /load of a changed configuration, and an edit of
//     balance.bin until its new name answers; a registration lost in
//     either fails the benchmark;
//   - first-request and next-request: the latency of a name's first
//     request, which opens its multiplexed back connection, and its next;
//   - storm: the gateway restarted, until all agents are registered again,
//     with its peak resident memory meanwhile against the steady state.
func BenchmarkScale(b *testing.B) {
	names, idle, alive := scaleSettings(b)
	client := env.Client()
	for range b.N {
		one := startQuiet(b, 1, alive)
		waitAnswers(b, client, one, 0)
		time.Sleep(2 * time.Second)
		baseline := rss(b, one.Process)
		one.Stop()

		started := time.Now()
		g := startQuiet(b, names, alive)
		waitAnswers(b, client, g, names-1)
		startup := time.Since(started)
		time.Sleep(2 * time.Second)
		configured := rss(b, g.Process)
		configuredMemory := memory(b, g)
		configuredLive := liveHeap(b, g)

		l := startLoad(b, g, names)
		register, _ := l.waitRegistered(names, 10*time.Minute)
		time.Sleep(5 * time.Second)
		connected := rss(b, g.Process)
		connectedMemory := memory(b, g)

		cpu0 := cpu(b, g.Process)
		time.Sleep(idle)
		idleCPU := float64(cpu(b, g.Process)-cpu0) / float64(idle) * 100
		connectedIdle := rss(b, g.Process)
		steady := settledRSS(b, g.Process, func() uint32 { return memory(b, g).NumGC })
		steadyMemory := memory(b, g)
		steadyLive := liveHeap(b, g)
		scrapeBytes, scrapeCPU := scrape(b, g, idleCPU)
		agentsBytes, agentsCPU := adminCost(b, g, "/tildegate/agents", 3)
		_, namesCPU := adminCost(b, g, "/tildegate/names", 3)
		entryBytes, entryCPU := adminCost(b, g, "/tildegate/agents/b7", 200)

		closedBefore := g.Log.Count("agent registration closed")
		started = time.Now()
		config := strings.Replace(g.Config(), "grace_period 2s", "grace_period 3s", 1)
		if err := g.Reload(config); err != nil {
			b.Fatal(err)
		}
		reload := time.Since(started)
		started = time.Now()
		g.WriteBalance(backEntries(names) + fmt.Sprintf("/~~b%d=pw-new#:*;\n", names))
		waitAnswers(b, client, g, names)
		edit := time.Since(started)
		if lost := g.Log.Count("agent registration closed") - closedBefore; lost > 0 {
			b.Fatalf("%d registrations closed by the reloads", lost)
		}
		if r := l.last(); r.Registered != names {
			b.Fatalf("%d of %d agents registered after the reloads", r.Registered, names)
		}

		started = time.Now()
		if status, _, err := e2e.Get(client, g.URL("/~~b7/first")); err != nil || status != http.StatusOK {
			b.Fatalf("first request: %d %v", status, err)
		}
		first := time.Since(started)
		started = time.Now()
		if status, _, err := e2e.Get(client, g.URL("/~~b7/next")); err != nil || status != http.StatusOK {
			b.Fatalf("next request: %d %v", status, err)
		}
		next := time.Since(started)

		beforeStorm := rss(b, g.Process)
		g.Stop()
		for l.last().Registered > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		started = time.Now()
		g.Start()
		var peak int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for l.last().Registered < names && time.Since(started) < 10*time.Minute {
				if v, err := g.RSS(); err == nil {
					peak = max(peak, v)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		storm, _ := l.waitRegistered(names, 10*time.Minute)
		<-done

		b.ReportMetric(startup.Seconds(), "s/startup")
		b.ReportMetric(float64(configured-baseline)/float64(names), "KiB/name")
		b.ReportMetric(register.Seconds(), "s/register")
		b.ReportMetric(float64(connected-configured)/float64(names), "KiB/agent")
		b.ReportMetric(float64(connectedIdle-configured)/float64(names), "KiB/agent-idle")
		b.ReportMetric(float64(steady-configured)/float64(names), "KiB/agent-steady")
		perAgent := func(after, before uint64) float64 { return (float64(after) - float64(before)) / 1024 / float64(names) }
		b.ReportMetric(perAgent(connectedMemory.HeapInuse, configuredMemory.HeapInuse), "heap-KiB/agent")
		b.ReportMetric(perAgent(connectedMemory.StackInuse, configuredMemory.StackInuse), "stack-KiB/agent")
		b.ReportMetric(perAgent(steadyMemory.HeapInuse, configuredMemory.HeapInuse), "heap-KiB/agent-steady")
		b.ReportMetric(perAgent(steadyMemory.StackInuse, configuredMemory.StackInuse), "stack-KiB/agent-steady")
		b.ReportMetric(perAgent(steadyLive, configuredLive), "live-KiB/agent")
		b.ReportMetric(idleCPU, "%core-idle")
		b.ReportMetric(float64(scrapeBytes)/1e6, "MB/metrics")
		b.ReportMetric(scrapeCPU.Seconds(), "s/metrics-cpu")
		b.ReportMetric(float64(agentsBytes)/1e6, "MB/agents-list")
		b.ReportMetric(agentsCPU.Seconds(), "s/agents-list-cpu")
		b.ReportMetric(namesCPU.Seconds(), "s/names-list-cpu")
		b.ReportMetric(float64(entryBytes)/1e3, "kB/agent-entry")
		b.ReportMetric(float64(entryCPU.Microseconds())/1000, "ms/agent-entry-cpu")
		b.ReportMetric(reload.Seconds(), "s/reload")
		b.ReportMetric(edit.Seconds(), "s/edit")
		b.ReportMetric(float64(first.Microseconds())/1000, "ms/first-request")
		b.ReportMetric(float64(next.Microseconds())/1000, "ms/next-request")
		b.ReportMetric(storm.Seconds(), "s/storm")
		b.ReportMetric(float64(peak)/float64(beforeStorm), "peak/steady-RSS")
		b.Logf("%d names: baseline %d KiB, configured %d KiB, connected %d KiB, steady %d KiB, before the storm %d KiB, storm peak %d KiB",
			names, baseline, configured, connected, steady, beforeStorm, peak)
		l.Stop()
		g.Stop()
	}
}

// startQuiet starts a gateway with n back entries, the default tunnel
// settings but the alive interval (dead after three of them) and an
// info-level log.
func startQuiet(b *testing.B, n int, alive time.Duration) *e2e.Gateway {
	g := e2e.NewGateway(b, env, backEntries(n))
	g.Tunnel, g.LogLevel = fmt.Sprintf("tunnel {\n\t\t\talive_interval %s\n\t\t\tdead_after %s\n\t\t}", alive, 3*alive), "INFO"
	g.WriteConfig()
	g.Start()
	return g
}

// waitAnswers waits until g answers for back entry number i, which no
// agent serves yet or one does.
func waitAnswers(b *testing.B, client *http.Client, g *e2e.Gateway, i int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, _, err := e2e.Get(client, g.URL(fmt.Sprintf("/~~b%d/", i)))
		if err == nil && (status == http.StatusBadGateway || status == http.StatusOK) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("b%d not answered within a minute: %d %v", i, status, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rss(b *testing.B, p *e2e.Process) int64 {
	b.Helper()
	v, err := p.RSS()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func cpu(b *testing.B, p *e2e.Process) time.Duration {
	b.Helper()
	v, err := p.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// memory returns the gateway's Go memory figures from the admin API's
// /debug/vars: a few kilobytes, where a scrape of /metrics with thousands
// of names leaves tens of megabytes of garbage that the collector would
// scan during the idle minute.
func memory(b *testing.B, g *e2e.Gateway) goMemory {
	b.Helper()
	res := adminGet(b, g, "/debug/vars")
	defer res.Body.Close()
	var vars struct{ Memstats goMemory }
	if err := json.NewDecoder(res.Body).Decode(&vars); err != nil {
		b.Fatalf("the gateway's /debug/vars: %v", err)
	}
	return vars.Memstats
}

// goMemory is what the benchmarks read of a process's runtime.MemStats.
type goMemory struct {
	HeapInuse, HeapAlloc, StackInuse uint64
	NumGC                            uint32
}

// liveHeap has the gateway collect its garbage (the admin API's heap
// profile does when asked) and returns its heap then: what is live, in
// bytes.
func liveHeap(b *testing.B, g *e2e.Gateway) uint64 {
	b.Helper()
	res := adminGet(b, g, "/debug/pprof/heap?gc=1")
	_, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		b.Fatalf("the gateway's heap profile: %v", err)
	}
	return memory(b, g).HeapAlloc
}

// settledRSS waits for p's next garbage collection, which the runtime
// forces within 2 minutes of the last one, and then for p's resident
// memory to stop falling as the runtime gives the freed pages back to the
// system; and returns that resident memory in KiB. numGC reads p's count
// of collections.
func settledRSS(b *testing.B, p *e2e.Process, numGC func() uint32) int64 {
	b.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for gc := numGC(); numGC() == gc; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			b.Fatal("no garbage collection within 4 minutes")
		}
	}
	last := rss(b, p)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Second)
		v := rss(b, p)
		if v > last-256 {
			return min(v, last)
		}
		last = v
	}
	return last
}

// scrape reads /metrics once and returns its size and the gateway's CPU
// for it: from the scrape's start to 5s after, less idleCPU (in percent of
// a core) over that time.
func scrape(b *testing.B, g *e2e.Gateway, idleCPU float64) (int64, time.Duration) {
	b.Helper()
	cpu0, start := cpu(b, g.Process), time.Now()
	res := adminGet(b, g, "/metrics")
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		b.Fatalf("the gateway's /metrics: %v", err)
	}
	time.Sleep(5 * time.Second)
	spent := cpu(b, g.Process) - cpu0 - time.Duration(idleCPU/100*float64(time.Since(start)))
	return n, spent
}

// adminCost gets path from the admin API n times, each on a connection of
// its own, and returns the size of an answer and the gateway's CPU per
// request.
func adminCost(b *testing.B, g *e2e.Gateway, path string, n int) (int64, time.Duration) {
	b.Helper()
	cpu0 := cpu(b, g.Process)
	var size int64
	for range n {
		res := adminGet(b, g, path)
		var err error
		size, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			b.Fatalf("the gateway's %s: %v", path, err)
		}
	}
	return size, (cpu(b, g.Process) - cpu0) / time.Duration(n)
}

// adminGet gets path from the gateway's admin API on a connection of its
// own: a pooled one left idle could be closed by the admin API (after 60s,
// the idle minute's length) as the next request, the reload, takes it.
func adminGet(b *testing.B, g *e2e.Gateway, path string) *http.Response {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", g.Admin, path), nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Close = true
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		b.Fatalf("%s: %s", path, res.Status)
	}
	return res
}

// scaleSettings returns the scale benchmarks' settings: SCALE_NAMES (the
// names, agents or connections: 10,000 by default), SCALE_IDLE (how long
// idle CPU is measured: a minute) and SCALE_ALIVE (the alive interval: the
// tunnel's default).
func scaleSettings(b *testing.B) (n int, idle, alive time.Duration) {
	return envInt(b, "SCALE_NAMES", 10000), envDuration(b, "SCALE_IDLE", time.Minute),
		envDuration(b, "SCALE_ALIVE", broker.DefaultAlive)
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
