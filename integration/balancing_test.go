package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// backendOf returns which backend answered a JSON request.
func backendOf(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	res, body := get(t, client, url)
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("GET %s: %d %q", url, res.StatusCode, body)
	}
	return s.Backend
}

func newJarClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: caddytest.CreateTestingTransport(), Jar: jar, Timeout: 10 * time.Second}
}

// TestStickyFailover: several lines for one name are load balanced; a
// client stays on its server and moves to another when that one dies.
func TestStickyFailover(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	balance := writeFile(t, t.TempDir(), "balance.bin", fmt.Sprintf("/~~farm=%s;\n/~~farm=%s;\n", a.hostPort(), b.hostPort()))
	startGateway(t, gatewayConfig("", "\t\tbalance_file "+balance), "caddyfile")

	spread := map[string]int{}
	for range 20 {
		client := newJarClient(t)
		first := backendOf(t, client, gatewayURL+"/~~farm/")
		for range 5 {
			if got := backendOf(t, client, gatewayURL+"/~~farm/"); got != first {
				t.Fatalf("client moved from %s to %s", first, got)
			}
		}
		spread[first]++
	}
	if spread["a"] == 0 || spread["b"] == 0 {
		t.Errorf("new clients all went to one server: %v", spread)
	}

	client := newJarClient(t)
	first := backendOf(t, client, gatewayURL+"/~~farm/")
	survivor := map[string]*backend{"a": b, "b": a}[first]
	map[string]*backend{"a": a, "b": b}[first].Close()
	for range 5 {
		if got := backendOf(t, client, gatewayURL+"/~~farm/"); got != survivor.name {
			t.Fatalf("after %s died the client got %q, want %s", first, got, survivor.name)
		}
	}
}

// TestActiveHealthChecks: with health checks configured in the server's
// block, a server whose health endpoint fails gets no requests.
func TestActiveHealthChecks(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	b.sick.Store(true)
	startGateway(t, gatewayConfig("", fmt.Sprintf(`		server farm http://%s http://%s {
			lb_policy round_robin
			health_uri /health
			health_interval 100ms
		}`, a.hostPort(), b.hostPort())), "caddyfile")
	// the first check runs at provisioning; give it a moment to record b as down
	eventually(t, 2*time.Second, func() error {
		for range 10 {
			if got := backendOf(t, newJarClient(t), gatewayURL+"/~~farm/"); got != "a" {
				return fmt.Errorf("request went to %s", got)
			}
		}
		return nil
	})
	b.sick.Store(false)
	eventually(t, 2*time.Second, func() error {
		for range 10 {
			if backendOf(t, newJarClient(t), gatewayURL+"/~~farm/") == "b" {
				return nil
			}
		}
		return fmt.Errorf("b never came back")
	})
}
