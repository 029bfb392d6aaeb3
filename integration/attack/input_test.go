package attack

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// TestBadAndOversizedInput sends the gateway malformed and oversized
// upgrades: a 20 KB hello, a hello with a 10 KB field, a 10 KB name, the
// versions tildegate/1, tildegate/2 (the previous one, both as the Upgrade
// token and as v=2 under the current token) and tildegate/99, an AUTH
// frame whose header announces 65535 bytes, and garbage after the 101.
// Must hold: each is refused with the right code and status (version:
// HTTP 400 whose message names the current version; the 20 KB hello gets
// Caddy's own 431 before tildegate sees it), the post-101 ones with a
// REFUSE bad-request; the gateway's log grows by less than 4 KB for the
// 20 KB hello and by a bounded amount for all of them; and the gateway
// stays up and a normal agent registers and serves afterwards.
func TestBadAndOversizedInput(t *testing.T) {
	t.Parallel()
	local := e2e.LocalService(t, "input")
	g := e2e.StartGateway(t, env, "/~~input=input-pw#:*;\n")
	host := g.PlainAddress()
	valid := func(v int) string {
		return wire.Hello{Version: v, Role: wire.RoleControl, Nonce: e2e.Nonce()}.String()
	}
	cases := []struct {
		name, path, upgrade, hello string
		status                     int
		code                       string
		says                       string
	}{
		// Caddy's HTTP server refuses a header this large itself, before
		// tildegate sees it.
		{"20 KB hello", "/~~input", wire.UpgradeToken, fmt.Sprintf("v=%d; role=control; nonce=", wire.Version) + strings.Repeat("A", 20<<10), 431, "", ""},
		{"10 KB field", "/~~input", wire.UpgradeToken, valid(wire.Version) + "; junk=" + strings.Repeat("x", 10<<10), 400, "bad-request", "at most 1024"},
		{"10 KB name", "/~~" + strings.Repeat("n", 10<<10), wire.UpgradeToken, valid(wire.Version), 404, "unknown-name", "no back entry"},
		{"tildegate/1 and v=1", "/~~input", "tildegate/1", valid(1), 400, "version", wire.UpgradeToken},
		{"tildegate/2, the previous version", "/~~input", "tildegate/2", valid(2), 400, "version", wire.UpgradeToken},
		{"v=2 under the current token", "/~~input", wire.UpgradeToken, valid(2), 400, "version", wire.UpgradeToken},
		{"tildegate/99", "/~~input", "tildegate/99", valid(wire.Version), 400, "version", wire.UpgradeToken},
	}
	total := len(g.Log.String())
	for i, c := range cases {
		before := len(g.Log.String())
		a, br := upgrade(dialFrom(t, loopback(8, i), host), request(host, c.path, c.upgrade, c.hello))
		if br != nil || a.Status != c.status || a.refusal() != c.code || !strings.Contains(a.Body, c.says) {
			t.Errorf("%s: %s, want %d %s saying %q", c.name, a, c.status, c.code, c.says)
			continue
		}
		if c.code != "" {
			g.Log.WaitFor(5*time.Second, 0, "agent connection refused", c.code, loopback(8, i))
		} else {
			time.Sleep(300 * time.Millisecond) // any log line it causes
		}
		grown := len(g.Log.String()) - before
		t.Logf("%s: %d %s, the gateway's log grew by %d bytes", c.name, a.Status, a.refusal(), grown)
		if grown > 4<<10 {
			t.Errorf("%s: the gateway's log grew by %d bytes", c.name, grown)
		}
	}

	// After the 101: a frame header announcing 65535 bytes, and garbage.
	for i, tail := range [][]byte{
		append([]byte{byte(wire.FrameAuth), 0xff, 0xff}, make([]byte, 4096)...),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("\x00garbage\xff", 400)),
	} {
		conn := dialFrom(t, loopback(8, 100+i), host)
		a, br := upgrade(conn, request(host, "/~~input", wire.UpgradeToken, valid(wire.Version)))
		if br == nil {
			t.Fatalf("a valid hello was refused: %s", a)
		}
		_, _ = conn.Write(tail)
		f, err := wire.ReadFrame(br)
		if err != nil || f.Type != wire.FrameRefuse || f.Code != wire.CodeBadRequest {
			t.Errorf("bytes %d after the 101: frame %d code %s (%v), want REFUSE bad-request", i, f.Type, f.Code, err)
		}
		if n, _ := io.Copy(io.Discard, br); n > 0 {
			t.Errorf("bytes %d after the 101: %d more bytes after the REFUSE", i, n)
		}
	}
	time.Sleep(300 * time.Millisecond)
	grown := len(g.Log.String()) - total
	t.Logf("the gateway's log grew by %d bytes for %d bad upgrades", grown, len(cases)+2)
	if grown > 16<<10 {
		t.Errorf("the gateway's log grew by %d bytes for %d bad upgrades", grown, len(cases)+2)
	}
	if g.Exited() {
		t.Fatal("the gateway exited")
	}

	// A normal agent afterwards, and a normal request to the site.
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("input", "input-pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "input")
	if status, body, err := e2e.Get(env.Client(), g.URL("/~~input/hello")); err != nil || status != http.StatusOK {
		t.Errorf("a request after the bad input: %d %q %v", status, body, err)
	}
}
