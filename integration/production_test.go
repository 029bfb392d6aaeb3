package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"golang.org/x/crypto/bcrypt"
)

// substitute replaces each old string of pairs (old, new, old, new, ...)
// in text, and fails the test if text lacks one: the example changed, and
// the test no longer runs what it means to.
func substitute(t *testing.T, name, text string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("%s has no %q to replace", name, pairs[i])
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	return text
}

// bcryptHash is the hash of password that basic_auth takes, at bcrypt's
// least cost, which keeps the test quick.
func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(hash)
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip and that trusts roots. It does not follow redirects, and it
// leaves compressed bodies as they come.
func clientFrom(ip string, roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:        dialer.DialContext,
			TLSClientConfig:    &tls.Config{RootCAs: roots},
			DisableCompression: true,
		},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// basicAuth is an Authorization header's value for user and password.
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// fetch sends a GET for url with the headers (name, value, ...) and
// returns the response with its body read.
func fetch(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return res, body
}

// localRoot waits until the Caddy listening on addr has a certificate
// from its local CA, which it issues in the background after it started,
// then returns that CA's root from the storage folder. The wait is the
// only connection that does not verify the certificate: none can be
// verified before the root exists.
func localRoot(t *testing.T, gateway *e2e.Process, addr, storage string) *x509.CertPool {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if gateway.Exited() {
			t.Fatalf("the gateway exited; its log:\n%s", gateway.Log)
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return err
		}
		return conn.Close()
	})
	root, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatalf("no certificate in Caddy's root.crt:\n%s", root)
	}
	return pool
}

// productionGateway is the Caddy binary running examples/production.
type productionGateway struct {
	*e2e.Process
	// addr is the HTTPS site's address, site its URL; httpPort is the
	// port of the redirect to HTTPS.
	addr, site string
	httpPort   int
	// office and outside are clients that trust the gateway's certificate
	// and connect from 127.0.0.1, the office, and from 127.0.0.2.
	office, outside *http.Client
	accessLog       string
	// rdp is srv1's RDP service, the address of its RDPPORT line.
	rdp *rdpServer
}

// The passwords of the hashes the test puts in the Caddyfile.
const hrPassword, adminPassword = "hr-s3cret", "admin-s3cret"

// startProductionExample builds the Caddy binary and runs it with
// examples/production, its Caddyfile and balance.bin changed only where a
// test machine without internet must: Caddy's local CA instead of ACME, a
// loopback site with free ports instead of gateway.example.com, files in
// a temporary folder, password hashes the test knows, the office at
// 127.0.0.1, and the test's servers instead of the farm's.
func startProductionExample(t *testing.T) *productionGateway {
	t.Helper()
	dir := t.TempDir()
	env := &e2e.Env{Dir: dir}
	caddyBin, err := env.Build("caddy", "../cmd/caddy")
	if err != nil {
		t.Fatal(err)
	}
	g := &productionGateway{accessLog: filepath.Join(dir, "access.log"), rdp: newRDPServer(t)}

	srv1, payroll, hr := newBackend(t, "srv1", false), newBackend(t, "payroll", false), newBackend(t, "hr", false)
	farm1, farm2 := newBackend(t, "farm1", false), newBackend(t, "farm2", false)
	example, err := os.ReadFile("../examples/production/balance.bin")
	if err != nil {
		t.Fatal(err)
	}
	balance := writeFile(t, dir, "balance.bin", substitute(t, "balance.bin", string(example),
		"192.168.1.10:80;", srv1.hostPort()+";",
		"192.168.1.10:3389", g.rdp.addr,
		"192.168.1.11:80", farm1.hostPort(),
		"192.168.1.12:80", farm2.hostPort(),
		"192.168.1.20:80", payroll.hostPort(),
		"192.168.1.30:80", hr.hostPort(),
	))

	g.httpPort = e2e.FreePort(t)
	httpsPort, adminPort := e2e.FreePort(t), e2e.FreePort(t)
	storage := filepath.Join(dir, "storage")
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, www, "index.html", "<h1>The farm</h1>")
	example, err = os.ReadFile("../examples/production/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	caddyfile := writeFile(t, dir, "Caddyfile", substitute(t, "Caddyfile", string(example),
		// Global options first: local_certs has Caddy's own CA issue the
		// certificate, and skip_install_trust keeps that CA out of the
		// system's trust store.
		"\n{\n", fmt.Sprintf(`
{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	local_certs
	skip_install_trust
	storage file_system %s
	persist_config off
	grace_period 1s
`, adminPort, g.httpPort, httpsPort, storage),
		"gateway.example.com {", "127.0.0.1 {",
		"/var/log/caddy/gateway-access.log", g.accessLog,
		"/etc/tildegate/balance.bin", balance,
		"/var/www/gateway", www,
		"client_ip 203.0.113.10 ", "client_ip 127.0.0.1 ",
		"hr PASTE_THE_OUTPUT_OF_caddy_hash-password_HERE", "hr "+bcryptHash(t, hrPassword),
		"admin PASTE_THE_OUTPUT_OF_caddy_hash-password_HERE", "admin "+bcryptHash(t, adminPassword),
	))

	g.Process = e2e.StartProcess(t, "gateway", caddyBin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	g.addr = fmt.Sprintf("127.0.0.1:%d", httpsPort)
	g.site = "https://" + g.addr
	e2e.WaitPort(t, g.Process, g.addr, 10*time.Second)
	roots := localRoot(t, g.Process, g.addr, storage)
	g.office, g.outside = clientFrom("127.0.0.1", roots), clientFrom("127.0.0.2", roots)
	return g
}

// TestProductionExample: everything examples/production promises holds
// when Caddy runs it: HTTPS and the redirect to it, names served and
// compressed, a farm's client kept on its server, payroll refused outside
// the office, passwords in front of hr, /status and /metrics, the access
// log, and native RDP on the HTTPS port.
func TestProductionExample(t *testing.T) {
	g := startProductionExample(t)

	t.Run("https", func(t *testing.T) {
		res, body := fetch(t, g.office, g.site+"/")
		if res.StatusCode != http.StatusOK || string(body) != "<h1>The farm</h1>" {
			t.Errorf("the home page: %s %q", res.Status, body)
		}
		// Caddy leaves https_port out of the redirect, taking it for a
		// port that 443 is mapped to: in production it is 443.
		res, _ = fetch(t, g.office, fmt.Sprintf("http://127.0.0.1:%d/~~srv1/", g.httpPort))
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusPermanentRedirect || loc != "https://127.0.0.1/~~srv1/" {
			t.Errorf("plain HTTP: %s to %q, want a redirect to https://127.0.0.1/~~srv1/", res.Status, loc)
		}
	})

	t.Run("compression", func(t *testing.T) {
		// The padding makes the backend's answer, which echoes the query,
		// longer than the shortest that encode compresses (512 bytes).
		url := g.site + "/~~srv1/page?pad=" + strings.Repeat("x", 600)
		res, body := fetch(t, g.outside, url, "Accept-Encoding", "gzip")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("srv1 with gzip: %s, Content-Encoding %q", res.Status, res.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var got seen
		if err := json.NewDecoder(zr).Decode(&got); err != nil || got.Backend != "srv1" || got.Path != "/page" {
			t.Errorf("srv1's answer, unzipped: %+v, %v", got, err)
		}
		res, _ = fetch(t, g.outside, url, "Accept-Encoding", "zstd")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "zstd" {
			t.Errorf("srv1 with zstd: %s, Content-Encoding %q", res.Status, res.Header.Get("Content-Encoding"))
		}
		res, body = fetch(t, g.outside, url)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "" || !bytes.Contains(body, []byte(`"backend":"srv1"`)) {
			t.Errorf("srv1 without Accept-Encoding: %s, Content-Encoding %q, %.100q", res.Status, res.Header.Get("Content-Encoding"), body)
		}
	})

	t.Run("farm", func(t *testing.T) {
		res, body := fetch(t, g.outside, g.site+"/~~farm/")
		var first seen
		if err := json.Unmarshal(body, &first); err != nil || res.StatusCode != http.StatusOK || !strings.HasPrefix(first.Backend, "farm") {
			t.Fatalf("farm: %s %.100q", res.Status, body)
		}
		cookies := res.Cookies()
		if len(cookies) != 1 || cookies[0].Name != "tildegate_farm" {
			t.Fatalf("farm set the cookies %v, want tildegate_farm", cookies)
		}
		for range 3 {
			_, body = fetch(t, g.outside, g.site+"/~~farm/", "Cookie", cookies[0].String())
			var again seen
			if err := json.Unmarshal(body, &again); err != nil || again.Backend != first.Backend {
				t.Errorf("farm with the cookie of %s: %.100q", first.Backend, body)
			}
		}
	})

	t.Run("payroll from the office only", func(t *testing.T) {
		for _, path := range []string{"/~~payroll/", "/~~payroll", "/~~PAYROLL/salaries", "/%7E%7Epayroll/"} {
			if res, body := fetch(t, g.outside, g.site+path); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s from outside the office: %s %.100q, want 403", path, res.Status, body)
			}
		}
		res, body := fetch(t, g.office, g.site+"/~~payroll/salaries")
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"backend":"payroll"`)) {
			t.Errorf("payroll from the office: %s %.100q", res.Status, body)
		}
	})

	t.Run("passwords", func(t *testing.T) {
		for _, tt := range []struct {
			path, user, password string
			want                 int
		}{
			{"/~~hr/", "", "", http.StatusUnauthorized},
			{"/~~HR/", "", "", http.StatusUnauthorized},
			{"/~~hr/", "hr", "wrong", http.StatusUnauthorized},
			{"/~~hr/", "hr", hrPassword, http.StatusOK},
			{"/status", "", "", http.StatusUnauthorized},
			{"/status", "hr", hrPassword, http.StatusUnauthorized},
			{"/status", "admin", adminPassword, http.StatusOK},
			{"/metrics", "", "", http.StatusUnauthorized},
			{"/metrics", "admin", adminPassword, http.StatusOK},
		} {
			var header []string
			if tt.user != "" {
				header = []string{"Authorization", basicAuth(tt.user, tt.password)}
			}
			res, body := fetch(t, g.outside, g.site+tt.path, header...)
			if res.StatusCode != tt.want {
				t.Errorf("%s as %q: %s, want %d", tt.path, tt.user, res.Status, tt.want)
			}
			if res.StatusCode == http.StatusOK && tt.path == "/~~hr/" {
				var got seen
				if err := json.Unmarshal(body, &got); err != nil || got.Backend != "hr" || got.Header.Get("Authorization") != "" {
					t.Errorf("hr's answer: %+v, %v; want hr's, without the Authorization header", got, err)
				}
			}
		}
	})

	t.Run("status and metrics", func(t *testing.T) {
		admin := basicAuth("admin", adminPassword)
		_, body := fetch(t, g.office, g.site+"/status", "Authorization", admin, "Accept", "application/json")
		var status struct{ Names []struct{ Name string } }
		err := json.Unmarshal(body, &status)
		names := map[string]bool{}
		for _, n := range status.Names {
			names[n.Name] = true
		}
		if err != nil || !names["srv1"] || !names["farm"] || !names["payroll"] || !names["hr"] {
			t.Errorf("/status: %v, names %v; want srv1, farm, payroll and hr", err, names)
		}
		_, body = fetch(t, g.office, g.site+"/metrics", "Authorization", admin)
		if !bytes.Contains(body, []byte("\ntildegate_names{kind=\"direct\"} 4\n")) {
			t.Errorf("/metrics lacks tildegate_names for the 4 direct names:\n%s", body)
		}
	})

	t.Run("rdp", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(e2e.RDPConnectionRequest("Cookie: mstshash=/~~srv1\r\n")); err != nil {
			t.Fatal(err)
		}
		if got, want := g.rdp.request(t), e2e.RDPConnectionRequest(""); !bytes.Equal(got, want) {
			t.Errorf("srv1's RDP service got % x, want % x, without the cookie", got, want)
		}
		s := &rdpSession{conn}
		s.expect(t, "confirm")
		s.echo(t, "client data")
	})

	t.Run("access log", func(t *testing.T) {
		fetch(t, g.outside, g.site+"/~~hr/logged", "Authorization", basicAuth("hr", hrPassword))
		line := waitLog(t, g.accessLog, `"uri":"/~~hr/logged"`, `"status":200`, `"remote_ip":"127.0.0.2"`)
		if strings.Contains(line, basicAuth("hr", hrPassword)) {
			t.Errorf("the access log shows the credentials: %s", line)
		}
	})
}
