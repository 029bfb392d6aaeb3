package tunnel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// waitServed polls url until it answers 200 and returns how long it took.
func waitServed(t testing.TB, url string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c := env.Client()
	c.Timeout = time.Second
	for {
		status, body, err := e2e.Get(c, url)
		if err == nil && status == http.StatusOK {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s not served within %s: %d %q %v", url, within, status, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThroughTheTunnel: a request, 1 MiB and 100 MiB bodies both ways and a
// websocket, through an agent connected over TLS.
func TestThroughTheTunnel(t *testing.T) {
	local := e2e.LocalService(t, "home")
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("home", "pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")
	c := env.Client()

	status, body, err := e2e.Get(c, g.URL("/~~home/hello"))
	if err != nil || status != http.StatusOK || body != "hello from home, path /hello, prefix /~~home" {
		t.Fatalf("request through the tunnel: %d %q %v", status, body, err)
	}

	// A burst wider than the pending-ticket limit (32) waits for back
	// connections rather than failing.
	var wg sync.WaitGroup
	var burstFailed atomic.Int64
	burst := time.Now()
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, err := e2e.Get(c, g.URL("/~~home/hello")); err != nil || status != http.StatusOK {
				burstFailed.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("100 concurrent requests: %s", time.Since(burst).Round(time.Millisecond))
	if n := burstFailed.Load(); n > 0 {
		t.Errorf("%d of 100 concurrent requests failed", n)
	}

	for _, size := range []int64{1 << 20, 100 << 20} {
		start := time.Now()
		res, err := c.Post(g.URL("/~~home/upload"), "application/octet-stream", e2e.PatternReader(size))
		if err != nil {
			t.Fatalf("upload %d: %v", size, err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("%d %s", size, e2e.PatternSum(size)); string(got) != want {
			t.Errorf("upload of %d bytes: the local service got %q, want %q", size, got, want)
		}
		t.Logf("upload %d MiB: %s", size>>20, time.Since(start).Round(time.Millisecond))

		start = time.Now()
		res, err = c.Get(g.URL(fmt.Sprintf("/~~home/download?size=%d", size)))
		if err != nil {
			t.Fatalf("download %d: %v", size, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		res.Body.Close()
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != e2e.PatternSum(size) {
			t.Errorf("download of %d bytes: got %d bytes, checksum match %v, %v", size, n, hex.EncodeToString(h.Sum(nil)) == e2e.PatternSum(size), err)
		}
		t.Logf("download %d MiB: %s", size>>20, time.Since(start).Round(time.Millisecond))
	}

	ws := env.DialEcho(t, g.URL("/~~home/ws"))
	for _, msg := range []string{"hello", strings.Repeat("x", 100<<10)} {
		if got, err := e2e.Echo(ws, msg); err != nil || got != strings.ToUpper(msg) {
			t.Errorf("websocket echo of %d bytes: %d bytes back, %v", len(msg), len(got), err)
		}
	}
}

// TestAgentKilled: kill -9 of the agent during a transfer fails the client
// at once, and a restarted agent serves again within 2 s.
func TestAgentKilled(t *testing.T) {
	local := e2e.LocalService(t, "home")
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	line := e2e.BackbalanceLine("home", "pw", g.Address(), local.Listener.Addr().String())
	agent := env.StartAgent(t, "agent", line)
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")

	res, err := env.Client().Get(g.URL(fmt.Sprintf("/~~home/download?size=%d", int64(100)<<30)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.CopyN(io.Discard, res.Body, 10<<20); err != nil {
		t.Fatalf("the transfer did not start: %v", err)
	}
	failed := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, res.Body)
		failed <- time.Now()
	}()
	killed := time.Now()
	agent.Kill()
	select {
	case at := <-failed:
		t.Logf("the client's transfer ended %s after kill -9", at.Sub(killed).Round(time.Millisecond))
		if at.Sub(killed) > time.Second {
			t.Errorf("the client's transfer ended %s after the agent died, want within 1s", at.Sub(killed))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client still hangs 5s after the agent died")
	}

	restarted := time.Now()
	env.StartAgent(t, "agent again", line)
	took := waitServed(t, g.URL("/~~home/hello"), 5*time.Second)
	t.Logf("a restarted agent served after %s", took.Round(time.Millisecond))
	if since := time.Since(restarted); since > 2*time.Second+200*time.Millisecond {
		t.Errorf("the restarted agent served after %s, want within 2s", since)
	}
}

// TestGatewayRestart: the agent comes back by itself within 5 s of the
// gateway's restart.
func TestGatewayRestart(t *testing.T) {
	local := e2e.LocalService(t, "home")
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("home", "pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")
	waitServed(t, g.URL("/~~home/hello"), 5*time.Second)

	g.Stop()
	time.Sleep(500 * time.Millisecond) // the agent sees the gateway gone
	g.Start()
	took := waitServed(t, g.URL("/~~home/hello"), 5*time.Second)
	t.Logf("served again %s after the gateway restarted", took.Round(time.Millisecond))
}

// TestOneAgentPerName: a second agent with the right password is refused
// while the first lives; the first resumes at once after a drop the gateway
// did not see; a silent connection frees the name after the dead time.
func TestOneAgentPerName(t *testing.T) {
	local := e2e.LocalService(t, "home")
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	r := newRelay(t, g.Address())
	viaRelay := e2e.BackbalanceLine("home", "pw", r.addr(), local.Listener.Addr().String())
	direct := e2e.BackbalanceLine("home", "pw", g.Address(), local.Listener.Addr().String())

	first := env.StartAgent(t, "first agent", viaRelay)
	first.Log.WaitFor(10*time.Second, 0, "registered", "home")
	second := env.StartAgent(t, "second agent", direct)
	second.Log.WaitFor(5*time.Second, 0, "name-taken")
	g.Log.WaitFor(2*time.Second, 0, "agent connection refused", "name-taken", "home")

	cut := time.Now()
	r.cutAgentSide()
	g.Log.WaitFor(5*time.Second, 0, "agent registered", `"resumed":true`)
	t.Logf("resumed %s after the drop", time.Since(cut).Round(time.Millisecond))
	if time.Since(cut) > time.Second {
		t.Errorf("resuming took %s, want at once", time.Since(cut))
	}
	waitServed(t, g.URL("/~~home/hello"), 2*time.Second)
	second.Stop()

	// The relay goes silent: the gateway frees the name after dead_after
	// (2s), and an agent elsewhere may take it.
	r.freeze()
	frozen := time.Now()
	g.Log.WaitFor(5*time.Second, 0, "agent registration closed", "silent")
	t.Logf("name freed %s after the relay went silent", time.Since(frozen).Round(time.Millisecond))
	env.StartAgent(t, "third agent", direct).Log.WaitFor(5*time.Second, 0, "registered", "home")
}

// TestRefusals: a wrong password, each address filter allowing and
// refusing, and an SSL entry refusing a plain connection, each said to the
// agent and logged by the gateway.
func TestRefusals(t *testing.T) {
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	g := e2e.StartGateway(t, env, `SSL /~~wrongpw=s3cr3t-RIGHT#:*;
/~~ipyes=pw#:*127.0.0.1;
/~~ipno=pw#:*127.0.0.2;
/~~prefixyes=pw#:*127.0.*;
/~~prefixno=pw#:*10.*;
/~~dnsyes=pw#:*localhost;
/~~dnsno=pw#:*localhost;
SSL /~~tlsonly=pw#:*;
`)
	tlsLines := e2e.BackbalanceLine("wrongpw", "s3cr3t-WRONG", g.Address(), local) +
		e2e.BackbalanceLine("ipyes", "pw", g.Address(), local) +
		e2e.BackbalanceLine("ipno", "pw", g.Address(), local) +
		e2e.BackbalanceLine("prefixyes", "pw", g.Address(), local) +
		e2e.BackbalanceLine("prefixno", "pw", g.Address(), local) +
		e2e.BackbalanceLine("dnsyes", "pw", g.Address(), local)
	agent := env.StartAgent(t, "agent", tlsLines+fmt.Sprintf("/~~tlsonly=pw#%s => %s;\n", g.PlainAddress(), local))
	other := env.StartAgent(t, "agent on 127.0.0.2", e2e.BackbalanceLine("dnsno", "pw", g.Address(), local), "-bind", "127.0.0.2")

	for _, name := range []string{"ipyes", "prefixyes", "dnsyes"} {
		agent.Log.WaitFor(10*time.Second, 0, "registered", `"`+name+`"`)
		waitServed(t, g.URL("/~~"+name+"/hello"), 2*time.Second)
	}
	for name, code := range map[string]string{
		"wrongpw": "wrong-password", "ipno": "address-not-allowed", "prefixno": "address-not-allowed", "tlsonly": "tls-required",
	} {
		agent.Log.WaitFor(10*time.Second, 0, code, name)
		g.Log.WaitFor(2*time.Second, 0, "agent connection refused", `"name":"`+name+`"`, code)
	}
	other.Log.WaitFor(10*time.Second, 0, "address-not-allowed", "dnsno")
	g.Log.WaitFor(2*time.Second, 0, "agent connection refused", `"name":"dnsno"`, "127.0.0.2")
	for _, log := range []*e2e.LineLog{g.Log, agent.Log} {
		if strings.Contains(log.String(), "s3cr3t") {
			t.Errorf("a password appears in the %s's log", log.Name)
		}
	}
}

// TestReloadsKeepRegistrations: ten admin API reloads while requests stream
// through the tunnel fail no request and lose no registration; a balance.bin
// edit that changes the password closes the registration, and the agent
// says why.
func TestReloadsKeepRegistrations(t *testing.T) {
	local := e2e.LocalService(t, "home")
	g := e2e.StartGateway(t, env, "SSL /~~home=pw#:*;\n")
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("home", "pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")
	ws := env.DialEcho(t, g.URL("/~~home/ws"))

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := env.Client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Get(g.URL("/~~home/download?size=262144"))
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && (res.StatusCode != http.StatusOK || n != 262144) {
						err = fmt.Errorf("status %d, %d bytes", res.StatusCode, n)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	caddyfile, err := os.ReadFile(g.Caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		time.Sleep(100 * time.Millisecond)
		next := strings.Replace(string(caddyfile), `respond "gateway"`, fmt.Sprintf(`respond "gateway %d"`, i), 1)
		if err := g.Reload(next); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests through the tunnel during 10 reloads, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("%d of %d requests failed; first: %v; the gateway's errors:\n%s", failed.Load(), ok.Load()+failed.Load(),
			firstErr.Load(), strings.Join(append(g.Log.Lines(`"level":"error"`), g.Log.Lines(`"level":"warn"`)...), "\n"))
	}
	if n := g.Log.Count("agent registration closed"); n > 0 {
		t.Errorf("%d registrations closed during reloads", n)
	}
	if n := agent.Log.Count("registered"); n != 1 {
		t.Errorf("the agent registered %d times, want once", n)
	}
	if got, err := e2e.Echo(ws, "still"); err != nil || got != "STILL" {
		t.Errorf("websocket through the tunnel after 10 reloads: %q %v", got, err)
	}

	g.WriteBalance("SSL /~~home=changed#:*;\n")
	agent.Log.WaitFor(5*time.Second, 0, "password-changed")
	g.Log.WaitFor(2*time.Second, 0, "agent registration closed", "password")
}
