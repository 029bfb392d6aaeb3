package tunnel

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/coder/websocket"
)

// get fetches a URL and returns status and body.
func get(c *http.Client, url string) (int, string, error) {
	res, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

// waitServed polls url until it answers 200 and returns how long it took.
func waitServed(t testing.TB, url string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c := client()
	c.Timeout = time.Second
	for {
		status, body, err := get(c, url)
		if err == nil && status == http.StatusOK {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s not served within %s: %d %q %v", url, within, status, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wsEcho dials the local service's websocket echo through the gateway.
func wsEcho(t testing.TB, g *gateway, name string) *websocket.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(bins.caFile)
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("wss://127.0.0.1:%d/~~%s/ws", g.httpsPort, name), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("websocket through the tunnel: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(1 << 20)
	return ws
}

func wsRoundTrip(ws *websocket.Conn, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, got, err := ws.Read(ctx)
	return string(got), err
}

// TestThroughTheTunnel: a request, 1 MiB and 100 MiB bodies both ways and a
// websocket, through an agent connected over TLS.
func TestThroughTheTunnel(t *testing.T) {
	local := newLocalService(t, "home")
	g := startGateway(t, "SSL /~~home=pw#:*;\n")
	agent := startAgent(t, "agent", backbalanceLine("home", "pw", g.address(), local.Listener.Addr().String()))
	agent.log.waitFor(10*time.Second, 0, "registered", "home")
	c := client()

	status, body, err := get(c, g.url("/~~home/hello"))
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
			if status, _, err := get(c, g.url("/~~home/hello")); err != nil || status != http.StatusOK {
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
		res, err := c.Post(g.url("/~~home/upload"), "application/octet-stream", patternReader(size))
		if err != nil {
			t.Fatalf("upload %d: %v", size, err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("%d %s", size, patternSum(size)); string(got) != want {
			t.Errorf("upload of %d bytes: the local service got %q, want %q", size, got, want)
		}
		t.Logf("upload %d MiB: %s", size>>20, time.Since(start).Round(time.Millisecond))

		start = time.Now()
		res, err = c.Get(g.url(fmt.Sprintf("/~~home/download?size=%d", size)))
		if err != nil {
			t.Fatalf("download %d: %v", size, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		res.Body.Close()
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != patternSum(size) {
			t.Errorf("download of %d bytes: got %d bytes, checksum match %v, %v", size, n, hex.EncodeToString(h.Sum(nil)) == patternSum(size), err)
		}
		t.Logf("download %d MiB: %s", size>>20, time.Since(start).Round(time.Millisecond))
	}

	ws := wsEcho(t, g, "home")
	for _, msg := range []string{"hello", strings.Repeat("x", 100<<10)} {
		if got, err := wsRoundTrip(ws, msg); err != nil || got != strings.ToUpper(msg) {
			t.Errorf("websocket echo of %d bytes: %d bytes back, %v", len(msg), len(got), err)
		}
	}
}

// TestAgentKilled: kill -9 of the agent during a transfer fails the client
// at once, and a restarted agent serves again within 2 s.
func TestAgentKilled(t *testing.T) {
	local := newLocalService(t, "home")
	g := startGateway(t, "SSL /~~home=pw#:*;\n")
	line := backbalanceLine("home", "pw", g.address(), local.Listener.Addr().String())
	agent := startAgent(t, "agent", line)
	agent.log.waitFor(10*time.Second, 0, "registered", "home")

	res, err := client().Get(g.url(fmt.Sprintf("/~~home/download?size=%d", int64(100)<<30)))
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
	agent.kill()
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
	startAgent(t, "agent again", line)
	took := waitServed(t, g.url("/~~home/hello"), 5*time.Second)
	t.Logf("a restarted agent served after %s", took.Round(time.Millisecond))
	if since := time.Since(restarted); since > 2*time.Second+200*time.Millisecond {
		t.Errorf("the restarted agent served after %s, want within 2s", since)
	}
}

// TestGatewayRestart: the agent comes back by itself within 5 s of the
// gateway's restart.
func TestGatewayRestart(t *testing.T) {
	local := newLocalService(t, "home")
	g := startGateway(t, "SSL /~~home=pw#:*;\n")
	agent := startAgent(t, "agent", backbalanceLine("home", "pw", g.address(), local.Listener.Addr().String()))
	agent.log.waitFor(10*time.Second, 0, "registered", "home")
	waitServed(t, g.url("/~~home/hello"), 5*time.Second)

	g.stop()
	time.Sleep(500 * time.Millisecond) // the agent sees the gateway gone
	g.start()
	took := waitServed(t, g.url("/~~home/hello"), 5*time.Second)
	t.Logf("served again %s after the gateway restarted", took.Round(time.Millisecond))
}

// TestOneAgentPerName: a second agent with the right password is refused
// while the first lives; the first resumes at once after a drop the gateway
// did not see; a silent connection frees the name after the dead time.
func TestOneAgentPerName(t *testing.T) {
	local := newLocalService(t, "home")
	g := startGateway(t, "SSL /~~home=pw#:*;\n")
	r := newRelay(t, g.address())
	viaRelay := backbalanceLine("home", "pw", r.addr(), local.Listener.Addr().String())
	direct := backbalanceLine("home", "pw", g.address(), local.Listener.Addr().String())

	first := startAgent(t, "first agent", viaRelay)
	first.log.waitFor(10*time.Second, 0, "registered", "home")
	second := startAgent(t, "second agent", direct)
	second.log.waitFor(5*time.Second, 0, "name-taken")
	g.log.waitFor(2*time.Second, 0, "agent connection refused", "name-taken", "home")

	cut := time.Now()
	r.cutAgentSide()
	g.log.waitFor(5*time.Second, 0, "agent registered", `"resumed":true`)
	t.Logf("resumed %s after the drop", time.Since(cut).Round(time.Millisecond))
	if time.Since(cut) > time.Second {
		t.Errorf("resuming took %s, want at once", time.Since(cut))
	}
	waitServed(t, g.url("/~~home/hello"), 2*time.Second)
	second.stop()

	// The relay goes silent: the gateway frees the name after dead_after
	// (2s), and an agent elsewhere may take it.
	r.freeze()
	frozen := time.Now()
	g.log.waitFor(5*time.Second, 0, "agent registration closed", "silent")
	t.Logf("name freed %s after the relay went silent", time.Since(frozen).Round(time.Millisecond))
	startAgent(t, "third agent", direct).log.waitFor(5*time.Second, 0, "registered", "home")
}

// TestRefusals: a wrong password, each address filter allowing and
// refusing, and an SSL entry refusing a plain connection, each said to the
// agent and logged by the gateway.
func TestRefusals(t *testing.T) {
	local := newLocalService(t, "home").Listener.Addr().String()
	g := startGateway(t, `SSL /~~wrongpw=s3cr3t-RIGHT#:*;
/~~ipyes=pw#:*127.0.0.1;
/~~ipno=pw#:*127.0.0.2;
/~~prefixyes=pw#:*127.0.*;
/~~prefixno=pw#:*10.*;
/~~dnsyes=pw#:*localhost;
/~~dnsno=pw#:*localhost;
SSL /~~tlsonly=pw#:*;
`)
	tlsLines := backbalanceLine("wrongpw", "s3cr3t-WRONG", g.address(), local) +
		backbalanceLine("ipyes", "pw", g.address(), local) +
		backbalanceLine("ipno", "pw", g.address(), local) +
		backbalanceLine("prefixyes", "pw", g.address(), local) +
		backbalanceLine("prefixno", "pw", g.address(), local) +
		backbalanceLine("dnsyes", "pw", g.address(), local)
	agent := startAgent(t, "agent", tlsLines+fmt.Sprintf("/~~tlsonly=pw#%s => %s;\n", g.plainAddress(), local))
	other := startAgent(t, "agent on 127.0.0.2", backbalanceLine("dnsno", "pw", g.address(), local), "-bind", "127.0.0.2")

	for _, name := range []string{"ipyes", "prefixyes", "dnsyes"} {
		agent.log.waitFor(10*time.Second, 0, "registered", `"`+name+`"`)
		waitServed(t, g.url("/~~"+name+"/hello"), 2*time.Second)
	}
	for name, code := range map[string]string{
		"wrongpw": "wrong-password", "ipno": "address-not-allowed", "prefixno": "address-not-allowed", "tlsonly": "tls-required",
	} {
		agent.log.waitFor(10*time.Second, 0, code, name)
		g.log.waitFor(2*time.Second, 0, "agent connection refused", `"name":"`+name+`"`, code)
	}
	other.log.waitFor(10*time.Second, 0, "address-not-allowed", "dnsno")
	g.log.waitFor(2*time.Second, 0, "agent connection refused", `"name":"dnsno"`, "127.0.0.2")
	for _, log := range []*lineLog{g.log, agent.log} {
		if strings.Contains(log.String(), "s3cr3t") {
			t.Errorf("a password appears in the %s's log", log.name)
		}
	}
}

// TestReloadsKeepRegistrations: ten admin API reloads while requests stream
// through the tunnel fail no request and lose no registration; a balance.bin
// edit that changes the password closes the registration, and the agent
// says why.
func TestReloadsKeepRegistrations(t *testing.T) {
	local := newLocalService(t, "home")
	g := startGateway(t, "SSL /~~home=pw#:*;\n")
	agent := startAgent(t, "agent", backbalanceLine("home", "pw", g.address(), local.Listener.Addr().String()))
	agent.log.waitFor(10*time.Second, 0, "registered", "home")
	ws := wsEcho(t, g, "home")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Get(g.url("/~~home/download?size=262144"))
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
	caddyfile, err := os.ReadFile(g.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		time.Sleep(100 * time.Millisecond)
		next := strings.Replace(string(caddyfile), `respond "gateway"`, fmt.Sprintf(`respond "gateway %d"`, i), 1)
		if err := g.reload(next); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests through the tunnel during 10 reloads, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("%d of %d requests failed; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if n := g.log.count("agent registration closed"); n > 0 {
		t.Errorf("%d registrations closed during reloads", n)
	}
	if n := agent.log.count("registered"); n != 1 {
		t.Errorf("the agent registered %d times, want once", n)
	}
	if got, err := wsRoundTrip(ws, "still"); err != nil || got != "STILL" {
		t.Errorf("websocket through the tunnel after 10 reloads: %q %v", got, err)
	}

	g.writeBalance("SSL /~~home=changed#:*;\n")
	agent.log.waitFor(5*time.Second, 0, "password-changed")
	g.log.waitFor(2*time.Second, 0, "agent registration closed", "password")
}
