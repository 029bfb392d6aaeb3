package clientip_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tildegate/tildegate/internal/clientip"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func init() {
	caddy.RegisterModule(echo{})
	httpcaddyfile.RegisterHandlerDirective("clientip_echo", func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return echo{}, nil
	})
}

// echo answers with FromRequest's address and Caddy's {client_ip}:
// "ADDR STRING CADDY".
type echo struct{}

func (echo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.clientip_echo", New: func() caddy.Module { return echo{} }}
}

func (echo) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	addr, s := clientip.FromRequest(r)
	caddyIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	fmt.Fprintf(w, "%s %s %s", addr, s, caddyIP)
	return nil
}

// Ports of the servers: their trusted_proxies options differ. They and
// the admin port are not caddytest's defaults, which the integration
// package's Caddy uses when the two test binaries run at once.
const (
	loose     = 9180 // loopback, 10.0.0.0/8 and fd00::/8 trusted, not strict
	strict    = 9181 // the same, strict
	distant   = 9182 // only 10.0.0.0/8 trusted: the loopback peer is not
	headers   = 9183 // loopback trusted, client_ip_headers X-Real-IP X-Forwarded-For
	adminPort = 2998
)

const config = `{
	admin localhost:2998
	http_port 9180
	https_port 9543
	grace_period 1ns
	servers :9180 {
		trusted_proxies static 127.0.0.1/8 ::1/128 10.0.0.0/8 fd00::/8
	}
	servers :9181 {
		trusted_proxies static 127.0.0.1/8 ::1/128 10.0.0.0/8 fd00::/8
		trusted_proxies_strict
	}
	servers :9182 {
		trusted_proxies static 10.0.0.0/8
	}
	servers :9183 {
		trusted_proxies static 127.0.0.1/8 ::1/128
		client_ip_headers X-Real-IP X-Forwarded-For
	}
}
http://:9180, http://:9181, http://:9182, http://:9183 {
	route {
		clientip_echo
	}
}
`

// ask sends a request from peer (127.0.0.1 or ::1) to the server on port
// with the header lines hdr ("Name: value") and returns what echo saw.
func ask(t *testing.T, peer string, port int, hdr []string) (addr netip.Addr, s, caddyIP string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort(peer, fmt.Sprint(port)))
		},
	}}
	req, err := http.NewRequest("GET", fmt.Sprintf("http://localhost:%d/", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hdr {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Add(name, value)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(body))
	if res.StatusCode != http.StatusOK || len(f) != 3 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	addr, err = netip.ParseAddr(f[0])
	if err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	return addr, f[1], f[2]
}

func TestFromRequestBehindTrustedProxies(t *testing.T) {
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(config, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	cases := []struct {
		name, peer string
		hdr        []string
		want       string
		// spoofed is set where Caddy's non-strict {client_ip} takes the
		// client's word: the leftmost entry.
		spoofed string
		// caddyMisreads is set where Caddy's strict mode skips an entry
		// it cannot parse: "[v6]:port" after a blank.
		caddyMisreads bool
	}{
		{"no header", "127.0.0.1", nil, "127.0.0.1", "", false},
		{"spoofed leftmost", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, 203.0.113.7"}, "203.0.113.7", "6.6.6.6", false},
		{"trusted hops skipped", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.2.3, 127.0.0.9"}, "203.0.113.7", "6.6.6.6", false},
		{"IPv6 client", "127.0.0.1", []string{"X-Forwarded-For: 2001:db8::66, 2001:db8::7"}, "2001:db8::7", "2001:db8::66", false},
		{"IPv6 client with port behind IPv6 proxy", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, [2001:db8::7]:4711, fd00::1"}, "2001:db8::7", "6.6.6.6", true},
		{"IPv4-mapped client", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, ::ffff:203.0.113.9"}, "203.0.113.9", "6.6.6.6", false},
		{"zone dropped", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, fe80::9%eth0"}, "fe80::9", "6.6.6.6", false},
		{"IPv4 client with port", "127.0.0.1", []string{"X-Forwarded-For: 203.0.113.7:5555"}, "203.0.113.7", "", false},
		{"every hop trusted", "127.0.0.1", []string{"X-Forwarded-For: 10.0.0.1, 127.0.0.5"}, "127.0.0.1", "", false},
		{"garbage skipped", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6, not-an-address, 10.0.0.2"}, "6.6.6.6", "", false},
		{"header lines joined", "127.0.0.1", []string{"X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 203.0.113.7"}, "203.0.113.7", "6.6.6.6", false},
		{"IPv6 peer", "::1", []string{"X-Forwarded-For: 2001:db8::66, 203.0.113.7"}, "203.0.113.7", "2001:db8::66", false},
		{"IPv6 peer, no header", "::1", nil, "::1", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, s, caddyIP := ask(t, c.peer, loose, c.hdr)
			if s != c.want || addr.String() != c.want || addr.Is4In6() {
				t.Errorf("FromRequest = %v %q, want %s", addr, s, c.want)
			}
			if c.spoofed != "" && caddyIP != c.spoofed {
				t.Errorf("Caddy's {client_ip} is %s, not the spoofed %s: the case tests nothing", caddyIP, c.spoofed)
			}
			// With trusted_proxies_strict, Caddy agrees.
			addr, _, caddyIP = ask(t, c.peer, strict, c.hdr)
			if addr.String() != c.want || netip.MustParseAddr(caddyIP).Unmap() != addr && !c.caddyMisreads {
				t.Errorf("strict server: FromRequest = %v, Caddy %s, want %s", addr, caddyIP, c.want)
			}
		})
	}

	t.Run("untrusted peer", func(t *testing.T) {
		for _, peer := range []string{"127.0.0.1", "::1"} {
			if _, s, _ := ask(t, peer, distant, []string{"X-Forwarded-For: 6.6.6.6, 203.0.113.7"}); s != peer {
				t.Errorf("from %s, not a trusted proxy: FromRequest = %s, want the peer", peer, s)
			}
		}
	})

	t.Run("client_ip_headers", func(t *testing.T) {
		for _, c := range []struct {
			hdr  []string
			want string
		}{
			{[]string{"X-Real-IP: 198.51.100.1", "X-Forwarded-For: 6.6.6.6, 203.0.113.7"}, "198.51.100.1"},
			{[]string{"X-Real-IP: 127.0.0.9", "X-Forwarded-For: 6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
			{[]string{"X-Forwarded-For: 6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		} {
			if _, s, _ := ask(t, "127.0.0.1", headers, c.hdr); s != c.want {
				t.Errorf("%q: FromRequest = %s, want %s", c.hdr, s, c.want)
			}
		}
	})
}

// TestFromRequestOutsideCaddy: without a Caddy server no proxy is trusted.
func TestFromRequestOutsideCaddy(t *testing.T) {
	for remote, want := range map[string]string{
		"203.0.113.7:1234":         "203.0.113.7",
		"[2001:db8::1]:443":        "2001:db8::1",
		"[::ffff:203.0.113.7]:443": "203.0.113.7",
		"[fe80::1%eth0]:443":       "fe80::1",
		"@":                        "@",
		"garbage":                  "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "6.6.6.6")
		addr, s := clientip.FromRequest(r)
		if s != want || addr.IsValid() != (want != "" && want != "@") {
			t.Errorf("RemoteAddr %q: FromRequest = %v %q, want %q", remote, addr, s, want)
		}
	}
}
