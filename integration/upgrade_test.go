package integration

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// TestUpgradeDotSegments: the operator guards /~~home* with a matcher; an
// agent upgrade whose path has . or .. segments, which the matcher sees
// cleaned, must not reach the back entry the guard protects, nor any other.
func TestUpgradeDotSegments(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	config := globalOptions(logFile) + fmt.Sprintf(`
localhost:%d {
	route {
		@home path /~~home*
		respond @home "guarded" 403
		tildegate {
			agent home {
				password secret
			}
			agent open {
				password secret
			}
		}
		respond "fallthrough {path}" 200
	}
}
`, httpsPort)
	startGateway(t, config, "caddyfile")

	// The guard sees upgrades: a straight one to home stops there.
	if res, body := upgrade(t, "/~~home/"); res.StatusCode != http.StatusForbidden || body != "guarded" {
		t.Errorf("upgrade to /~~home/: %d %q, want the guard's 403", res.StatusCode, body)
	}
	// An upgrade to an unguarded name reaches the broker, which refuses
	// the missing hello with its refusal header: what the ones below
	// must not get.
	if res, _ := upgrade(t, "/~~open/"); res.Header.Get(wire.HeaderRefusal) == "" {
		t.Fatalf("upgrade to /~~open/ did not reach the broker: %d %v", res.StatusCode, res.Header)
	}

	for _, target := range []string{
		"/~~home/../x",
		"/~~home/./x",
		"/~~home/..",
		"/~~home/x/../../y",
		"/~~x/../home",
		"/~~open/../~~home/",
		"/~~home/%2e%2e/x",
		"/~~home/%2E%2e/x",
		"/~~home/.%2e/x",
		"/~~home/%2e/x",
		"/~~home%2f..%2fx",
		"/~~open/..%2f~~home/",
	} {
		res, body := upgrade(t, target)
		switch {
		case res.Header.Get(wire.HeaderRefusal) != "":
			t.Errorf("upgrade to %s reached the broker: %d %q", target, res.StatusCode, body)
		case res.StatusCode == http.StatusForbidden && body == "guarded":
			// the cleaned path is /~~home...: the guard stopped it
		case res.StatusCode != http.StatusBadRequest || !strings.Contains(body, ". or .. segments"):
			t.Errorf("upgrade to %s: %d %q, want 400 for the dot segments or the guard's 403", target, res.StatusCode, body)
		}
	}

	// The broker logs every upgrade it refuses: only /~~open/'s.
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(logged), "\n") {
		if strings.Contains(line, "agent connection refused") && !strings.Contains(line, `"name":"open"`) {
			t.Errorf("the broker saw an upgrade it should not have: %s", line)
		}
	}
}

// upgrade sends an agent's upgrade request for target as it is written,
// over a TLS connection of its own, and returns the answer with its body.
func upgrade(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	var c *tls.Conn
	// The site's certificate may still be on its way from the local CA.
	eventually(t, 10*time.Second, func() (err error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err = tls.DialWithDialer(d, "tcp", fmt.Sprintf("localhost:%d", httpsPort), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", target, httpsPort, wire.UpgradeToken)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("upgrade to %s: %v", target, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("upgrade to %s: reading body: %v", target, err)
	}
	return res, strings.TrimSpace(string(body))
}
