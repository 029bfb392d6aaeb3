package integration

import (
	"fmt"
	"github.com/caddyserver/caddy/v2/caddytest"
	"strings"
	"testing"
)

// TestJSONConfig: the handler configured in Caddy's native JSON, with an
// inline server and a balance file whose entries get proxy options.
func TestJSONConfig(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	balance := writeFile(t, t.TempDir(), "balance.bin", fmt.Sprintf("/~~filed=%s;", b.hostPort()))
	config := fmt.Sprintf(`{
	"admin": {"listen": %q},
	"apps": {
		"http": {
			"http_port": %d,
			"grace_period": 1,
			"servers": {
				"gateway": {
					"listen": [":%d"],
					"automatic_https": {"disable": true},
					"routes": [{
						"handle": [
							{
								"handler": "tildegate",
								"servers": {"inline": {"upstreams": [{"dial": %q}]}},
								"balance_files": [{"path": %q, "proxy": {"headers": {"request": {"set": {"X-Via": ["json"]}}}}}]
							},
							{"handler": "static_response", "body": "fallthrough"}
						]
					}]
				}
			}
		}
	}
}`, adminAddr, httpPort, httpPort, a.hostPort(), balance)
	tester := startGateway(t, config, "json")
	base := fmt.Sprintf("http://localhost:%d", httpPort)
	if got := backendOf(t, tester.Client, base+"/~~inline/"); got != "a" {
		t.Errorf("inline server answered by %s", got)
	}
	_, body := get(t, tester.Client, base+"/~~filed/")
	if !strings.Contains(body, `"backend":"b"`) || !strings.Contains(body, `"X-Via":["json"]`) {
		t.Errorf("balance file entry: %s", body)
	}
	if _, body := get(t, tester.Client, base+"/x"); body != "fallthrough" {
		t.Errorf("other path: %q", body)
	}
}

// TestJSONMistakes: JSON that Caddy's own handlers would refuse is refused
// here too, with the place named.
func TestJSONMistakes(t *testing.T) {
	route := func(handler string) string {
		return fmt.Sprintf(`{"admin": {"listen": %q}, "apps": {"http": {"servers": {"gw": {"listen": [":%d"],
			"routes": [{"handle": [%s]}]}}}}}`, adminAddr, httpPort, handler)
	}
	caddytest.AssertLoadError(t, route(`{"handler": "tildegate", "servers": {"srv1": {"upstream": [{"dial": "127.0.0.1:1"}]}}}`), "json", `server srv1: json: unknown field`)
	caddytest.AssertLoadError(t, route(`{"handler": "tildegate", "servers": {"srv1": {}}}`), "json", "server srv1: no upstreams")
	caddytest.AssertLoadError(t, route(`{"handler": "tildegate", "balance_files": [{"path": "/x", "proxy": {"upstreams": [{"dial": "127.0.0.1:1"}]}}]}`), "json", "balance file /x: proxy: upstreams are not allowed here")
}
