package integration

import (
	"fmt"
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
