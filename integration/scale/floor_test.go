package scale

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// BenchmarkTLSFloor measures what BenchmarkScale's idle agents cost a Go
// server with crypto/tls and nothing else (integration/tlsfloor): SCALE_NAMES
// connections (default 10,000) of one client process, each read by a
// goroutine and written one record every SCALE_ALIVE (default the tunnel's
// alive interval), which the client answers. It prints, as BenchmarkScale
// does for agents: resident memory, Go heap in use and goroutine stacks
// per connection, the resident memory per connection again after SCALE_IDLE
// (default 1m), and the idle CPU in percent of a core over it; and the
// settled figures, after the runtime's next collection; and the live heap
// per connection, from a collection asked for before and after.
func BenchmarkTLSFloor(b *testing.B) {
	conns, idle, alive := scaleSettings(b)
	for range b.N {
		server, addr := startFloor(b, alive)
		time.Sleep(2 * time.Second)
		before, beforeStats := rss(b, server), floorStats(b, server, 0)
		beforeLive := floorLive(b, server)

		client := e2e.StartProcess(b, "tlsfloor client", tlsFloor, "-dial", addr, "-ca", env.CAFile, "-count", strconv.Itoa(conns))
		client.Log.WaitFor(10*time.Minute, 0, "connected")
		time.Sleep(5 * time.Second)
		connected, connectedStats := rss(b, server), floorStats(b, server, 2)
		if connectedStats.Conns != int64(conns) {
			b.Fatalf("the server holds %d connections, want %d", connectedStats.Conns, conns)
		}

		cpu0 := cpu(b, server)
		time.Sleep(idle)
		idleCPU := float64(cpu(b, server)-cpu0) / float64(idle) * 100
		connectedIdle := rss(b, server)
		// Every connection was written to and answered at least once an
		// interval, but the last.
		idleStats := floorStats(b, server, 3)
		if want := int64(conns) * int64(idle/alive-1); idleStats.Answers-connectedStats.Answers < want {
			b.Fatalf("%d answers over %s, want %d at least", idleStats.Answers-connectedStats.Answers, idle, want)
		}

		steady := settledRSS(b, server, func() uint32 { return floorStats(b, server, -1).NumGC })
		steadyStats := floorStats(b, server, -1)
		steadyLive := floorLive(b, server)

		per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / 1024 / float64(conns) }
		b.ReportMetric(float64(connected-before)/float64(conns), "KiB/conn")
		b.ReportMetric(float64(connectedIdle-before)/float64(conns), "KiB/conn-idle")
		b.ReportMetric(float64(steady-before)/float64(conns), "KiB/conn-steady")
		b.ReportMetric(per(steadyStats.HeapInuse, beforeStats.HeapInuse), "heap-KiB/conn-steady")
		b.ReportMetric(per(steadyStats.StackInuse, beforeStats.StackInuse), "stack-KiB/conn-steady")
		b.ReportMetric(per(steadyLive.HeapAlloc, beforeLive.HeapAlloc), "live-KiB/conn")
		b.ReportMetric(per(connectedStats.HeapInuse, beforeStats.HeapInuse), "heap-KiB/conn")
		b.ReportMetric(per(connectedStats.StackInuse, beforeStats.StackInuse), "stack-KiB/conn")
		b.ReportMetric(idleCPU, "%core-idle")
		client.Stop()
		server.Stop()
	}
}

// TestTLSFloor: the floor's server writes each connection a record every
// alive interval, in bursts a second apart, and reads the answers.
func TestTLSFloor(t *testing.T) {
	server, addr := startFloor(t, time.Second)
	e2e.StartProcess(t, "tlsfloor client", tlsFloor, "-dial", addr, "-ca", env.CAFile, "-count", "50").
		Log.WaitFor(time.Minute, 0, "connected 50")
	start := time.Now()
	e2e.WaitUntil(t, 10*time.Second, "two answers from each connection", func() bool {
		return floorStats(t, server, -1).Answers >= 100
	})
	if d := time.Since(start); d < time.Second {
		t.Errorf("two answers from each of 50 connections within %s: written more often than every second", d)
	}
	s := floorStats(t, server, -1)
	if s.Conns != 50 || s.StackInuse == 0 || s.HeapInuse == 0 || s.HeapAlloc == 0 {
		t.Errorf("stats %+v, want 50 connections and the memory in use", s)
	}
	if live := floorLive(t, server); live.NumGC <= s.NumGC || live.HeapAlloc == 0 {
		t.Errorf("stats after a collection asked for: %+v, after %+v", live, s)
	}
}

// startFloor starts the floor's server with the test certificate and
// returns it and its address.
func startFloor(t testing.TB, alive time.Duration) (*e2e.Process, string) {
	t.Helper()
	p := e2e.StartProcess(t, "tlsfloor server", tlsFloor, "-serve", "127.0.0.1:0", "-cert", env.CertFile, "-key", env.KeyFile,
		"-alive", alive.String())
	p.Log.WaitFor(10*time.Second, 0, "listening")
	return p, strings.TrimPrefix(p.Log.First("listening"), "listening ")
}

// floorStats asks the floor's server for its figures and returns them: its
// n-th answer (counting from 0), or with n < 0 the one after those so far.
func floorStats(t testing.TB, p *e2e.Process, n int) tlsfloorStats {
	t.Helper()
	return floorAnswer(t, p, n, syscall.SIGUSR1)
}

// floorLive returns the floor's next figures after a garbage collection,
// so that its HeapAlloc is what is live.
func floorLive(t testing.TB, p *e2e.Process) tlsfloorStats {
	t.Helper()
	return floorAnswer(t, p, -1, syscall.SIGUSR2)
}

// floorAnswer sends the floor's server sig and returns its n-th answer, as
// floorStats does.
func floorAnswer(t testing.TB, p *e2e.Process, n int, sig syscall.Signal) tlsfloorStats {
	t.Helper()
	if n < 0 {
		n = p.Log.Count(`"conns":`)
	}
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	p.Log.WaitFor(10*time.Second, n, `"conns":`)
	lines := p.Log.Lines(`"conns":`)
	var s tlsfloorStats
	if err := json.Unmarshal([]byte(lines[n]), &s); err != nil {
		t.Fatalf("the floor's stats %q: %v", lines[n], err)
	}
	return s
}

// tlsfloorStats is the floor's answer to SIGUSR1 (integration/tlsfloor).
type tlsfloorStats struct {
	Conns   int64 `json:"conns"`
	Answers int64 `json:"answers"`
	goMemory
}
