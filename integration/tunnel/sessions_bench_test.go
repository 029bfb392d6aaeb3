package tunnel

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// 100 and 2000 sessions, to a direct name and to a name behind an agent
// (over TLS), each with a gateway and agent of its own. Clients speak
// plain HTTP to the gateway. It reports:
//   - sessions-open, s-to-open: how many sessions opened within
//     sessionsOpenWithin, all asked for at once, and how long that took;
//   - ms-first-echo-p50/p99: the first echo of every session, at once;
//   - ms-echo-p99-held, keepalive-ratio: while every session echoes 64
//     bytes every 3 s for 6 s, the slowest echoes, and the rate of
//     keep-alive requests to the same name against its rate before the
//     sessions opened;
//   - ms-echo-p99-bulk: the same echoes while a bulk download runs on the
//     same name (head-of-line blocking);
//   - gateway- and agent-KiB/session: RSS growth per open session, after
//     the first echoes;
//   - MB/s and gateway- and agent-µs-CPU/MB: 16 KiB echoes as fast as they
//     go on every session for 2 s, CPU time per MB moved.
//
// TUNNEL_LIMITS, when set, adds its lines to the gateway's tunnel blocks,
// to measure other limits, e.g. TUNNEL_LIMITS="max_sessions 100".
func BenchmarkSessions(b *testing.B) {
	for _, n := range []int{1, 100, 2000} {
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
	base := fmt.Sprintf("%s/~~%s", g.PlainAddress(), name)
	alone := keepAliveRate(b, "http://"+base+"/hello", time.Second)
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
			ws, _, err := websocket.Dial(ctx, "ws://"+base+"/ws", nil)
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
	msg := bytes.Repeat([]byte("x"), 64)
	first, failed := echoAll(open, msg, 0, 1)
	reportLatency(b, first, "ms-first-echo-p50", 50)
	reportLatency(b, first, "ms-first-echo-p99", 99)
	for i, who := range []string{"gateway", "agent"}[:len(pids)] {
		b.ReportMetric(float64(processRSS(b, pids[i])-before[i])/float64(len(open)), who+"-KiB/session")
	}

	// Held: 64 bytes every 3 s on every session, with keep-alive requests
	// on the same name; then again with a bulk download on it.
	during := make(chan float64, 1)
	go func() { during <- keepAliveRate(b, "http://"+base+"/hello", 5*time.Second) }()
	held, heldFailed := echoAll(open, msg, 3*time.Second, 2)
	b.ReportMetric(<-during/alone, "keepalive-ratio")
	reportLatency(b, held, "ms-echo-p99-held", 99)
	stopBulk := make(chan struct{})
	bulkDone := make(chan struct{})
	go func() {
		defer close(bulkDone)
		downloadUntil(stopBulk, "http://"+base+"/download?size=1073741824")
	}()
	withBulk, bulkFailed := echoAll(open, msg, 3*time.Second, 2)
	close(stopBulk)
	<-bulkDone
	reportLatency(b, withBulk, "ms-echo-p99-bulk", 99)
	b.ReportMetric(float64(failed+heldFailed+bulkFailed), "echo-failures")

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

// echoAll has every session echo msg rounds times, every interval
// (starting at moments spread over the interval), and returns the sorted
// latencies of the echoes that came back and how many did not.
func echoAll(conns []*websocket.Conn, msg []byte, interval time.Duration, rounds int) ([]time.Duration, int) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failed    int
		wg        sync.WaitGroup
	)
	for i, c := range conns {
		wg.Go(func() {
			if interval > 0 {
				time.Sleep(interval * time.Duration(i) / time.Duration(len(conns)))
			}
			for r := range rounds {
				sent := time.Now()
				got, err := echo(c, msg)
				d := time.Since(sent)
				mu.Lock()
				if err == nil && len(got) == len(msg) {
					latencies = append(latencies, d)
				} else {
					failed++
				}
				mu.Unlock()
				if err != nil {
					return
				}
				if r < rounds-1 {
					time.Sleep(interval - d)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(latencies)
	return latencies, failed
}

// reportLatency reports the percentile p of sorted latencies, in ms.
func reportLatency(b *testing.B, sorted []time.Duration, unit string, p int) {
	if len(sorted) > 0 {
		b.ReportMetric(float64(sorted[(len(sorted)-1)*p/100].Microseconds())/1000, unit)
	}
}

// keepAliveRate runs 4 keep-alive clients against url for d and returns
// the requests per second they got answered.
func keepAliveRate(b testing.TB, url string, d time.Duration) float64 {
	var served atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for time.Now().Before(deadline) {
				if status, _, err := e2e.Get(c, url); err == nil && status == http.StatusOK {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if served.Load() == 0 {
		b.Fatalf("no keep-alive request to %s was served", url)
	}
	return float64(served.Load()) / d.Seconds()
}

// downloadUntil downloads url, as fast as it comes, until stop closes.
func downloadUntil(stop <-chan struct{}, url string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
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
