package attack

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// behindProxy gives the gateway's servers a trusted proxy: 127.0.0.1.
func behindProxy(caddyfile string) string {
	return strings.Replace(caddyfile, "servers {", "servers {\n\t\ttrusted_proxies static 127.0.0.1/32", 1)
}

// TestForwardedForSpoof: behind a trusted proxy (127.0.0.1 here), a
// client writes its own X-Forwarded-For to claim the address an entry's
// filter allows; the proxy appends the address it really came from. Must
// hold: the gateway takes the rightmost untrusted hop, so the spoof is
// refused and logged with the true address; the same claim straight from
// an untrusted peer is refused too; the client that really has the address
// gets in.
func TestForwardedForSpoof(t *testing.T) {
	t.Parallel()
	g := e2e.StartGateway(t, env, "/~~filt=filt-pw#:*1.2.3.4;\n")
	if err := g.Reload(behindProxy(g.Config())); err != nil {
		t.Fatalf("trusting the proxy: %v", err)
	}
	for _, c := range []struct {
		what, from, forwarded string
		admitted              bool
	}{
		{"a spoof through the trusted proxy", "127.0.0.1", "1.2.3.4, 10.9.9.9", false},
		{"a spoof from an untrusted peer", "127.0.6.1", "1.2.3.4", false},
		{"the allowed client through the trusted proxy", "127.0.0.1", "1.2.3.4", true},
	} {
		a := controlAfterReload(t, c.from, g.PlainAddress(), "filt", "filt-pw", c.forwarded)
		switch {
		case c.admitted && !a.Welcome:
			t.Errorf("%s: %s, want it registered", c.what, a)
		case !c.admitted && a.refusal() != wire.CodeAddressNotAllowed.String():
			t.Errorf("%s: %s, want address-not-allowed", c.what, a)
		}
	}
	g.Log.WaitFor(5*time.Second, 0, "agent connection refused", `"remote_ip":"10.9.9.9"`, "address-not-allowed")
	if strings.Contains(g.Log.String(), `"remote_ip":"1.2.3.4","code":"address-not-allowed"`) {
		t.Error("a refusal was logged with the claimed address")
	}
}

// TestThrottleCountsIPv6BySlash64: IPv6 clients behind a trusted proxy
// count by their /64, since one host commonly has a whole /64: guesses
// from six addresses of one /64 share the budget of one source, and
// another /64 has its own.
func TestThrottleCountsIPv6BySlash64(t *testing.T) {
	t.Parallel()
	g := e2e.StartGateway(t, env, "/~~six=six-pw#:*;\n")
	if err := g.Reload(behindProxy(g.Config())); err != nil {
		t.Fatalf("trusting the proxy: %v", err)
	}
	guess := func(client string) answer {
		return controlAfterReload(t, "127.0.0.1", g.PlainAddress(), "six", "wrong", client)
	}
	for i := range 5 {
		if a := guess(fmt.Sprintf("2001:db8:1:2::%x", i+1)); !a.verdict() {
			t.Fatalf("guess %d from the /64: %s, want a verdict", i+1, a)
		}
	}
	if a := guess("2001:db8:1:2:ffff::9"); !a.throttled() {
		t.Errorf("a sixth guess from another address of the same /64: %s, want throttled", a)
	}
	if a := guess("2001:db8:1:3::1"); !a.verdict() {
		t.Errorf("a guess from another /64: %s, want a verdict", a)
	}
}

// controlAfterReload sends a control handshake for name from the source
// address from, with forwarded as its X-Forwarded-For, to a gateway just
// reloaded: a connection that the old configuration's server took just
// before it stopped is closed unanswered, and is made once more.
func controlAfterReload(t *testing.T, from, addr, name, password, forwarded string) answer {
	t.Helper()
	attempt := func() answer {
		return control(dialFrom(t, from, addr), nil, name, password, nil, "X-Forwarded-For: "+forwarded+"\r\n")
	}
	a := attempt()
	if errors.Is(a.Err, syscall.ECONNRESET) || errors.Is(a.Err, io.EOF) || errors.Is(a.Err, io.ErrUnexpectedEOF) {
		a = attempt()
	}
	return a
}
