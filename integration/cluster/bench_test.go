package cluster

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// BenchmarkAgentPerGateway: what each more gateway costs the agent. An
// agent with 100 entries registers on 1, 2, then 3 gateways (DNS adds
// their addresses one by one); once every entry is registered on each,
// the agent's resident memory and its CPU use while idle (over 3 s, with
// the tests' alive interval of 500 ms) are reported, and at 3 gateways
// the memory that each gateway past the first costs. KiB-heap is the Go
// heap in use, by the agent's /metrics: RSS less what the runtime holds
// but does not use.
func BenchmarkAgentPerGateway(b *testing.B) {
	const entries = 100
	const idle = 3 * time.Second
	names := make([]string, entries)
	for i := range names {
		names[i] = fmt.Sprintf("e%d", i)
	}
	d := e2e.StartDNS(b)
	c := e2e.StartCluster(b, env, e2e.ClusterSpec{Host: host, Balance: backBalance(names...),
		Binds: [][]string{ips[:1], ips[1:2], ips[2:]}})
	d.Set(host, ips[0])
	local := e2e.LocalService(b, "bench").Listener.Addr().String()
	var backbalance strings.Builder
	for _, n := range names {
		backbalance.WriteString(entry(c, n, local, ""))
	}
	a := startAgent(b, c, d, backbalance.String(), "-log-level", "warn")

	rss := make(map[int]int64)
	for k := 1; k <= len(ips); k++ {
		b.Run(fmt.Sprintf("gateways=%d", k), func(b *testing.B) {
			d.Set(host, ips[:k]...)
			for _, g := range c.Gateways[:k] {
				waitRegistered(b, g, entries, 30*time.Second)
			}
			for range b.N {
				cpu, err := a.CPU()
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(idle) // the window measured, idle
				used, err := a.CPU()
				if err != nil {
					b.Fatal(err)
				}
				if rss[k], err = a.RSS(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rss[k]), "KiB-RSS")
				b.ReportMetric(float64(a.heapInUse(b))/1024, "KiB-heap")
				b.ReportMetric(100*(used-cpu).Seconds()/idle.Seconds(), "%CPU-idle")
			}
			if k > 1 {
				b.ReportMetric(float64(rss[k]-rss[1])/float64(k-1), "KiB/extra-gateway")
			}
		})
	}
}

// heapInUse is the agent's Go heap in use, in bytes, by its /metrics.
func (a *agent) heapInUse(tb testing.TB) int64 {
	tb.Helper()
	status, body, err := a.get("/metrics")
	if err != nil || status != http.StatusOK {
		tb.Fatalf("the agent's /metrics: %d %v", status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return int64(f)
		}
	}
	tb.Fatal("no go_memstats_heap_inuse_bytes in the agent's /metrics")
	return 0
}

// BenchmarkAgentThousandEntries: an agent with 1000 entries registers on
// three gateways at once: 3000 registrations, each with a control and two
// multiplexed connections. It reports how long until every entry is
// registered on every gateway, the agent's open files (its /proc fd
// count, which must stay well within the 20,000 a process may have here),
// and its resident memory.
func BenchmarkAgentThousandEntries(b *testing.B) {
	const entries = 1000
	names := make([]string, entries)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	for range b.N {
		d := e2e.StartDNS(b)
		c := e2e.StartCluster(b, env, e2e.ClusterSpec{Host: host, Balance: backBalance(names...),
			Binds: [][]string{ips[:1], ips[1:2], ips[2:]}})
		d.Set(host, ips...)
		local := e2e.LocalService(b, "bench").Listener.Addr().String()
		var backbalance strings.Builder
		for _, n := range names {
			backbalance.WriteString(entry(c, n, local, ""))
		}
		start := time.Now()
		a := startAgent(b, c, d, backbalance.String(), "-log-level", "error")
		for _, g := range c.Gateways {
			waitRegistered(b, g, entries, 5*time.Minute)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-register")
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.Cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(fds)), "open-files")
		rss, err := a.RSS()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss)/1024, "MiB-RSS")
	}
}

// waitRegistered waits until g lists n back entries with an agent
// connected.
func waitRegistered(tb testing.TB, g *e2e.ClusterGateway, n int, within time.Duration) {
	tb.Helper()
	e2e.WaitUntil(tb, within, fmt.Sprintf("%d entries registered on %s", n, g.Instance), func() bool {
		agents, err := g.Agents()
		connected := 0
		for _, a := range agents {
			if a.Connected {
				connected++
			}
		}
		return err == nil && connected == n
	})
}
