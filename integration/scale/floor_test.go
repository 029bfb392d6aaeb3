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
// (default 1m), and the idle CPU in percent of a core over it.
func BenchmarkTLSFloor(b *testing.B) {
	conns, idle, alive := scaleSettings(b)
	for range b.N {
		server, addr := startFloor(b, alive)
		time.Sleep(2 * time.Second)
		before, beforeStats := rss(b, server), floorStats(b, server, 0)

		client := e2e.StartProcess(b, "tlsfloor client", tlsFloor, "-dial", addr, "-ca", env.CAFile, "-count", strconv.Itoa(conns))
		client.Log.WaitFor(10*time.Minute, 0, "connected")
		time.Sleep(5 * time.Second)
		connected, connectedStats := rss(b, server), floorStats(b, server, 1)
		if connectedStats.Conns != int64(conns) {
			b.Fatalf("the server holds %d connections, want %d", connectedStats.Conns, conns)
		}

		cpu0 := cpu(b, server)
		time.Sleep(idle)
		idleCPU := float64(cpu(b, server)-cpu0) / float64(idle) * 100
		connectedIdle := rss(b, server)
		// Every connection was written to and answered at least once an
		// interval, but the last.
		idleStats := floorStats(b, server, 2)
		if want := int64(conns) * int64(idle/alive-1); idleStats.Answers-connectedStats.Answers < want {
			b.Fatalf("%d answers over %s, want %d at least", idleStats.Answers-connectedStats.Answers, idle, want)
		}

		per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / 1024 / float64(conns) }
		b.ReportMetric(float64(connected-before)/float64(conns), "KiB/conn")
		b.ReportMetric(float64(connectedIdle-before)/float64(conns), "KiB/conn-idle")
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
	if s := floorStats(t, server, -1); s.Conns != 50 || s.StackInuse == 0 || s.HeapInuse == 0 {
		t.Errorf("stats %+v, want 50 connections and the memory in use", s)
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
	if n < 0 {
		n = p.Log.Count(`"conns":`)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
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
	Conns      int64  `json:"conns"`
	Answers    int64  `json:"answers"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
}
