package tunnel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tildegate/tildegate/internal/e2e"
)

// sessionsOpenWithin bounds how long the benchmark waits for a session to
// open; the target is all of them within 2 s.
const sessionsOpenWithin = 5 * time.Second

// BenchmarkSessions measures long-lived websocket sessions held at once,
// as the users of a remote-desktop server's HTML5 client hold them: for 1,
// 100, 500 and 2000 sessions, to a direct name and to a name behind an
// agent (over TLS), each with a gateway and agent of its own. Clients
// speak plain HTTP to the gateway. It reports how many sessions opened
// within sessionsOpenWithin and how long that took, the gateway's and the
// agent's RSS per open session, the latency of the first echo, and the CPU
// time per MB of 16 KiB echoes as fast as they go for 2 s.
//
// TUNNEL_LIMITS, when set, adds its lines to the gateway's tunnel block,
// to measure other limits, e.g. TUNNEL_LIMITS="max_back_conns 5000".
func BenchmarkSessions(b *testing.B) {
	for _, n := range []int{1, 100, 500, 2000} {
		for _, path := range []string{"direct", "agent"} {
			b.Run(fmt.Sprintf("%s/%d", path, n), func(b *testing.B) {
				for range b.N {
					benchSessions(b, n, path == "agent")
				}
			})
		}
	}
}

func benchSessions(b *testing.B, n int, tunnelled bool) {
	local := e2e.LocalService(b, "sessions").Listener.Addr().String()
	g := e2e.StartGateway(b, env, fmt.Sprintf("/~~tun=pw#:*;\n/~~dir=%s;\n", local))
	if limits := os.Getenv("TUNNEL_LIMITS"); limits != "" {
		if err := g.Reload(strings.Replace(g.Config(), "tunnel {", "tunnel {\n"+limits, -1)); err != nil {
			b.Fatal(err)
		}
	}
	name, pids := "dir", []int{g.Cmd.Process.Pid}
	if tunnelled {
		agent := env.StartAgent(b, "agent", e2e.BackbalanceLine("tun", "pw", g.Address(), local))
		agent.Log.WaitFor(10*time.Second, 0, "registered", "tun")
		waitServed(b, g.URL("/~~tun/hello"), 5*time.Second)
		name, pids = "tun", append(pids, agent.Cmd.Process.Pid)
	}
	url := fmt.Sprintf("ws://%s/~~%s/ws", g.PlainAddress(), name)
	before := make([]int64, len(pids))
	for i, pid := range pids {
		before[i] = processRSS(b, pid)
	}

	// Open the sessions at once.
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	started := time.Now()
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), sessionsOpenWithin)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err == nil {
				ws.SetReadLimit(1 << 20)
				conns[i] = ws
			}
		})
	}
	wg.Wait()
	openTime := time.Since(started)
	open := conns[:0:0]
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	defer func() {
		for _, c := range open {
			c.CloseNow()
		}
	}()
	b.ReportMetric(float64(len(open)), "sessions-open")
	b.ReportMetric(openTime.Seconds(), "s-to-open")
	if len(open) == 0 {
		return
	}

	// First echo of each session, all at once.
	firstEcho := make([]time.Duration, len(open))
	msg := bytes.Repeat([]byte("x"), 64)
	for i, c := range open {
		wg.Go(func() {
			t0 := time.Now()
			if got, err := echo(c, msg); err == nil && len(got) == len(msg) {
				firstEcho[i] = time.Since(t0)
			} else {
				firstEcho[i] = -1
			}
		})
	}
	wg.Wait()
	slices.Sort(firstEcho)
	failed := 0
	for _, d := range firstEcho {
		if d < 0 {
			failed++
		}
	}
	ok := firstEcho[failed:]
	if len(ok) > 0 {
		b.ReportMetric(float64(ok[len(ok)/2].Microseconds())/1000, "ms-first-echo-p50")
		b.ReportMetric(float64(ok[len(ok)*99/100].Microseconds())/1000, "ms-first-echo-p99")
	}
	b.ReportMetric(float64(failed), "echo-failures")
	for i, who := range []string{"gateway", "agent"}[:len(pids)] {
		b.ReportMetric(float64(processRSS(b, pids[i])-before[i])/float64(len(open)), who+"-KiB/session")
	}

	// Bulk echoes for 2 s, 16 KiB at a time on every session.
	cpu := make([]time.Duration, len(pids))
	for i, pid := range pids {
		cpu[i] = processCPU(b, pid)
	}
	big := bytes.Repeat([]byte("y"), 16<<10)
	var moved sync.Mutex
	total := 0
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range open {
		wg.Go(func() {
			sent := 0
			for time.Now().Before(deadline) {
				if _, err := echo(c, big); err != nil {
					break
				}
				sent += 2 * len(big)
			}
			moved.Lock()
			total += sent
			moved.Unlock()
		})
	}
	wg.Wait()
	mb := float64(total) / (1 << 20)
	b.ReportMetric(mb/2, "MB/s")
	for i, who := range []string{"gateway", "agent"}[:len(pids)] {
		b.ReportMetric(float64((processCPU(b, pids[i])-cpu[i]).Microseconds())/mb, who+"-µs-CPU/MB")
	}
}

// echo sends msg on ws and returns the answer.
func echo(ws *websocket.Conn, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return nil, err
	}
	_, got, err := ws.Read(ctx)
	return got, err
}

// processRSS is a process's resident memory, in KiB.
func processRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb
		}
	}
	tb.Fatalf("no VmRSS for process %d", pid)
	return 0
}
