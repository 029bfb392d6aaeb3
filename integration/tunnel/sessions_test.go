package tunnel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tildegate/tildegate/internal/e2e"
)

// openSessions opens n websockets to url at once and returns those that
// opened, and the answers of those that did not (status and body, or the
// error), each with how long it took.
func openSessions(n int, url string) (open []*websocket.Conn, refused []string, took []time.Duration) {
	conns := make([]*websocket.Conn, n)
	answers := make([]string, n)
	took = make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			ws, res, err := websocket.Dial(ctx, url, nil)
			took[i] = time.Since(start)
			switch {
			case err == nil:
				ws.SetReadLimit(1 << 20)
				conns[i] = ws
			case res != nil:
				body, _ := io.ReadAll(res.Body)
				answers[i] = fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
			default:
				answers[i] = err.Error()
			}
		})
	}
	wg.Wait()
	for i, c := range conns {
		if c != nil {
			open = append(open, c)
		} else {
			refused = append(refused, answers[i])
		}
	}
	return open, refused, took
}

// wantRefusals checks that each refused session was answered 503 with a
// body that says every one of says, and that no session, opened or
// refused, took longer than within to be answered.
func wantRefusals(t *testing.T, refused []string, took []time.Duration, within time.Duration, says ...string) {
	t.Helper()
	for _, r := range refused {
		ok := strings.HasPrefix(r, "503 ")
		for _, part := range says {
			ok = ok && strings.Contains(r, part)
		}
		if !ok {
			t.Errorf("a refused session got %q, want 503 saying %q", r, says)
			break
		}
	}
	if slowest := slices.Max(took); slowest > within {
		t.Errorf("a session was answered after %s, want within %s", slowest, within)
	}
}

// closeAll closes websockets at the end of a test.
func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		c.CloseNow()
	}
}

// TestManySessionsThroughOneAgent holds 500 websockets through one agent,
// as the users of a remote-desktop server's HTML5 client do, with
// max_sessions 520. Must hold: all 500 open (they were 84 of 500 when each
// session needed a back connection of its own, 64 at most per name); held
// for 9 s, each echoes a 64-byte message every 3 s, none later than 2 s,
// while a 200 MB download and keep-alive requests run on the same name;
// then, past the limit, new sessions are answered 503 at once, saying
// why, and the gateway logs it once; and no back connection hello is
// throttled.
func TestManySessionsThroughOneAgent(t *testing.T) {
	const sessions, limit = 500, 520
	local := e2e.LocalService(t, "many").Listener.Addr().String()
	g := e2e.StartGateway(t, env, "/~~many=pw#:*;\n")
	limited := strings.Replace(g.Config(), "tunnel {", fmt.Sprintf("tunnel {\n\t\t\tmax_sessions %d", limit), -1)
	if err := g.Reload(limited); err != nil {
		t.Fatal(err)
	}
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("many", "pw", g.Address(), local))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "many")
	waitServed(t, g.URL("/~~many/hello"), 5*time.Second)
	url := fmt.Sprintf("ws://%s/~~many/ws", g.PlainAddress())

	start := time.Now()
	open, refused, _ := openSessions(sessions, url)
	defer closeAll(open)
	t.Logf("%d of %d sessions opened in %s", len(open), sessions, time.Since(start).Round(time.Millisecond))
	if len(refused) > 0 {
		t.Fatalf("%d of %d sessions failed to open; first: %s", len(refused), sessions, refused[0])
	}

	// A bulk download and keep-alive requests on the same name while the
	// sessions echo.
	const bulk = 200 << 20
	downloaded := make(chan error, 1)
	go func() {
		res, err := http.Get(fmt.Sprintf("http://%s/~~many/download?size=%d", g.PlainAddress(), bulk))
		if err != nil {
			downloaded <- err
			return
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if err == nil && n != bulk {
			err = fmt.Errorf("%d bytes, want %d", n, bulk)
		}
		downloaded <- err
	}()
	stop := make(chan struct{})
	var requests, requestFailures atomic.Int64
	var requestsDone sync.WaitGroup
	requestsDone.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if status, _, err := e2e.Get(c, fmt.Sprintf("http://%s/~~many/hello", g.PlainAddress())); err != nil || status != http.StatusOK {
				requestFailures.Add(1)
			} else {
				requests.Add(1)
			}
		}
	})

	// Each session: a 64-byte message every 3 s, three times, starting at
	// spread-out moments.
	latencies := make([]time.Duration, len(open))
	var failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	msg := []byte(strings.Repeat("m", 64))
	for i, c := range open {
		wg.Go(func() {
			time.Sleep(time.Duration(i%300) * 10 * time.Millisecond)
			for range 3 {
				sent := time.Now()
				got, err := echo(c, msg)
				d := time.Since(sent)
				if err != nil || string(got) != strings.ToUpper(string(msg)) {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%q, %v", got, err))
					return
				}
				latencies[i] = max(latencies[i], d)
				time.Sleep(3*time.Second - d)
			}
		})
	}
	wg.Wait()
	close(stop)
	requestsDone.Wait()
	slices.Sort(latencies)
	t.Logf("echoes: p50 %s, p99 %s, max %s; %d keep-alive requests meanwhile", latencies[len(latencies)/2],
		latencies[len(latencies)*99/100], latencies[len(latencies)-1], requests.Load())
	if n := failures.Load(); n > 0 {
		t.Errorf("%d sessions failed to echo; first: %v", n, firstFailure.Load())
	}
	if worst := latencies[len(latencies)-1]; worst > 2*time.Second {
		t.Errorf("an echo took %s during the download, want at most 2s: the download stalls the sessions", worst)
	}
	if requests.Load() == 0 || requestFailures.Load() > 0 {
		t.Errorf("keep-alive requests during the sessions: %d served, %d failed", requests.Load(), requestFailures.Load())
	}
	select {
	case err := <-downloaded:
		if err != nil {
			t.Errorf("the download during the sessions: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("the download during the sessions did not end within 60 s")
	}

	// Past max_sessions: refused at once, with the reason.
	more, refused, took := openSessions(40, url)
	defer closeAll(more)
	t.Logf("past the limit: %d more opened, %d refused", len(more), len(refused))
	if len(more)+len(open) > limit || len(refused) < 40-(limit-sessions) {
		t.Errorf("%d sessions open with max_sessions %d, %d refused", len(more)+len(open), limit, len(refused))
	}
	wantRefusals(t, refused, took, 2*time.Second, "the gateway refused the session", "sessions are open")
	g.Log.WaitFor(5*time.Second, 0, "session refused", "too-many", `"name":"many"`)
	if n := g.Log.Count("session refused"); n != 1 {
		t.Errorf("the gateway logged %d lines for %d refused sessions, want one per minute", n, len(refused))
	}
	if n := g.Log.Count("throttled"); n > 0 {
		t.Errorf("the gateway throttled %d connections of the agent", n)
	}
}

// TestAgentNearItsOpenFileLimit runs the agent with a limit of 128 open
// files and opens 150 websockets through it. Must hold: the agent takes
// sessions until it nears its limit and refuses the rest at once with the
// reason, which the client sees in a 503; the agent and the gateway log it
// once; and once the sessions close, new ones open again.
func TestAgentNearItsOpenFileLimit(t *testing.T) {
	local := e2e.LocalService(t, "files").Listener.Addr().String()
	g := e2e.StartGateway(t, env, "/~~files=pw#:*;\n")
	agent := env.StartAgentLimited(t, "agent", e2e.BackbalanceLine("files", "pw", g.Address(), local), 128)
	agent.Log.WaitFor(10*time.Second, 0, "registered", "files")
	waitServed(t, g.URL("/~~files/hello"), 5*time.Second)
	url := fmt.Sprintf("ws://%s/~~files/ws", g.PlainAddress())

	open, refused, took := openSessions(150, url)
	t.Logf("%d sessions opened, %d refused", len(open), len(refused))
	// 128 files, 32 kept for the agent's own, a control and two
	// multiplexed connections: about 90 sessions.
	if len(open) < 60 || len(open) > 96 || len(refused) == 0 {
		t.Errorf("%d sessions opened and %d refused under a limit of 128 open files", len(open), len(refused))
	}
	wantRefusals(t, refused, took, 5*time.Second, "the agent refused the session", "limit of 128 open files")
	agent.Log.WaitFor(5*time.Second, 0, "refusing sessions", "limit of 128 open files")
	if n := agent.Log.Count("refusing sessions"); n != 1 {
		t.Errorf("the agent logged %d lines for %d refused sessions, want one", n, len(refused))
	}
	g.Log.WaitFor(5*time.Second, 0, "session refused", `"at_agent":true`)
	if n := g.Log.Count("session refused"); n != 1 {
		t.Errorf("the gateway logged %d lines for %d refused sessions, want one", n, len(refused))
	}

	closeAll(open)
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, refused, _ := openSessions(20, url)
		closeAll(again)
		if len(again) == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sessions closed, %d of 20 new ones opened; first refusal: %s", len(again), refused[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
