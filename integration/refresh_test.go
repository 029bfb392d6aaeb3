package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/coder/websocket"
)

// openEcho dials the websocket echo of /~~name through the gateway.
func openEcho(t *testing.T, name string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("wss://localhost:%d/~~%s/ws", httpsPort, name), &websocket.DialOptions{HTTPClient: http1Client()})
	if err != nil {
		t.Fatalf("websocket to %s: %v", name, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// echo sends msg and returns the answer.
func echo(ws *websocket.Conn, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, got, err := ws.Read(ctx)
	return string(got), err
}

// TestBalanceFileRefresh: an edit of balance.bin takes effect within a
// second without cutting websockets or requests in flight; a broken edit
// keeps the last good table and is logged with its position.
func TestBalanceFileRefresh(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s;\n", a.hostPort()))
	startGateway(t, gatewayConfig(logFile, "\t\tbalance_file "+balance), "caddyfile")
	client := newJarClient(t)
	if got := backendOf(t, client, gatewayURL+"/~~srv1/"); got != "a" {
		t.Fatalf("before the edit: %s", got)
	}

	ws := openEcho(t, "srv1")
	stream, err := client.Get(gatewayURL + "/~~srv1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	first := make([]byte, 64)
	if n, err := stream.Body.Read(first); err != nil || !strings.Contains(string(first[:n]), "first") {
		t.Fatalf("stream: %q %v", first[:n], err)
	}

	// An edit in place.
	written := time.Now()
	writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s;\n/~~added=%s;\n", b.hostPort(), a.hostPort()))
	eventually(t, time.Second, func() error {
		if got := backendOf(t, client, gatewayURL+"/~~srv1/"); got != "b" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	})
	t.Logf("edit in place took effect after %s", time.Since(written).Round(time.Millisecond))
	if got := backendOf(t, client, gatewayURL+"/~~added/"); got != "a" {
		t.Errorf("added name went to %s", got)
	}

	if got, err := echo(ws, "still there"); err != nil || got != "a:still there" {
		t.Errorf("websocket after the edit: %q %v", got, err)
	}
	close(a.release)
	rest := make([]byte, 64)
	if n, _ := stream.Body.Read(rest); !strings.Contains(string(rest[:n]), "second") {
		t.Errorf("request in flight across the edit: %q", rest[:n])
	}

	// A broken edit keeps the last good table.
	writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s;\n/~~srv2=127.0.0.1:99999;\n", a.hostPort()))
	eventually(t, 2*time.Second, func() error {
		logged, _ := os.ReadFile(logFile)
		if !strings.Contains(string(logged), "balance.bin:2:") {
			return fmt.Errorf("no error with a position in the log yet")
		}
		return nil
	})
	if got := backendOf(t, client, gatewayURL+"/~~srv1/"); got != "b" {
		t.Errorf("after a broken edit srv1 went to %s, want the last good b", got)
	}

	// An editor-style replace (write elsewhere, rename over) is seen too.
	tmp := writeFile(t, dir, "balance.bin.tmp", fmt.Sprintf("/~~srv1=%s;\n", a.hostPort()))
	written = time.Now()
	if err := os.Rename(tmp, balance); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, func() error {
		if got := backendOf(t, client, gatewayURL+"/~~srv1/"); got != "a" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	})
	t.Logf("rename took effect after %s", time.Since(written).Round(time.Millisecond))
	if res, _ := get(t, client, gatewayURL+"/~~added/"); res.StatusCode != http.StatusNotFound {
		t.Errorf("removed name answers %d", res.StatusCode)
	}
}

// TestStartupRefusesBrokenFile: at start-up a malformed balance.bin refuses
// the config with file:line:column.
func TestStartupRefusesBrokenFile(t *testing.T) {
	balance := writeFile(t, t.TempDir(), "balance.bin", "/~~ok=127.0.0.1:80;\n/~~bad=127.0.0.1:http;\n")
	caddytest.AssertLoadError(t, gatewayConfig("", "\t\tbalance_file "+balance), "caddyfile", "balance.bin:2:")
}

// TestNameDefinedTwice: a name in two places is refused, naming both.
func TestNameDefinedTwice(t *testing.T) {
	dir := t.TempDir()
	one := writeFile(t, dir, "one.bin", "/~~srv1=127.0.0.1:81;\n")
	two := writeFile(t, dir, "two.bin", "\n/~~SRV1=127.0.0.1:82;\n")
	caddytest.AssertLoadError(t, gatewayConfig("", "\t\tbalance_file "+one+"\n\t\tbalance_file "+two), "caddyfile", "one.bin:1:1 and "+two+":2:1")
	caddytest.AssertLoadError(t, gatewayConfig("", "\t\tserver srv1 127.0.0.1:83\n\t\tbalance_file "+one), "caddyfile", "server srv1 and "+one+":1:1")
}

// TestAdminReloadUnderLoad: ten admin API reloads while requests stream
// through fail no request and cut no websocket.
func TestAdminReloadUnderLoad(t *testing.T) {
	a := newBackend(t, "a", false)
	balance := writeFile(t, t.TempDir(), "balance.bin", fmt.Sprintf("/~~srv1=%s;\n", a.hostPort()))
	config := func(i int) string {
		cfg := gatewayConfig("", fmt.Sprintf("\t\tbalance_file %s\n\t\tserver inline http://%s", balance, a.hostPort()))
		cfg = strings.Replace(cfg, "grace_period 1ns", "grace_period 10s", 1)
		return strings.Replace(cfg, "fallthrough {path}", fmt.Sprintf("fallthrough %d {path}", i), 1)
	}
	startGateway(t, config(0), "caddyfile")
	ws := openEcho(t, "srv1")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newJarClient(t)
			name := []string{"srv1", "inline"}[w%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get(gatewayURL + "/~~" + name + "/load")
				if err == nil {
					var body []byte
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d: %q", res.StatusCode, body)
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
	for i := 1; i <= 10; i++ {
		time.Sleep(50 * time.Millisecond)
		if err := postConfig(config(i)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 10 reloads, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("%d of %d requests failed; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if got, err := echo(ws, "after reloads"); err != nil || got != "a:after reloads" {
		t.Errorf("websocket after 10 reloads: %q %v", got, err)
	}
}
