package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TunnelBlock is the Caddyfile tunnel block of the tests: short liveness
// times so that dead connections are found quickly.
const TunnelBlock = `tunnel {
			alive_interval 500ms
			dead_after 2s
			ticket_ttl 2s
			back_wait 3s
		}`

// Gateway is a running Caddy binary with tildegate as in production: a TLS
// site and a plain one, both routing the names of its balance.bin, and
// native RDP on both ports.
type Gateway struct {
	*Process
	t                          testing.TB
	env                        *Env
	BalancePath, Caddyfile     string
	HTTPSPort, HTTPPort, Admin int
	// RDPOptions go in the tildegate_rdp listener wrapper's block; set
	// them before Config.
	RDPOptions string
	// Tunnel is the tildegate directive's tunnel block: TunnelBlock
	// unless set before Config.
	Tunnel string
	// LogLevel is the least level logged: DEBUG unless set before Config.
	LogLevel string
}

// StartGateway writes balance as the gateway's balance.bin and starts it.
func StartGateway(t testing.TB, env *Env, balance string) *Gateway {
	t.Helper()
	g := NewGateway(t, env, balance)
	g.WriteConfig()
	g.Start()
	return g
}

// NewGateway writes balance as the balance.bin of a gateway that is not
// started yet: set its fields, then WriteConfig and Start.
func NewGateway(t testing.TB, env *Env, balance string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{t: t, env: env, HTTPSPort: FreePort(t), HTTPPort: FreePort(t), Admin: FreePort(t), Tunnel: TunnelBlock, LogLevel: "DEBUG"}
	g.BalancePath = filepath.Join(dir, "balance.bin")
	g.WriteBalance(balance)
	g.Caddyfile = filepath.Join(dir, "Caddyfile")
	return g
}

// WriteConfig writes Config to the gateway's Caddyfile.
func (g *Gateway) WriteConfig() {
	g.t.Helper()
	if err := os.WriteFile(g.Caddyfile, []byte(g.Config()), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// Config is the gateway's Caddyfile.
func (g *Gateway) Config() string {
	site := fmt.Sprintf(`tildegate {
		balance_file %s
		%s
	}`, g.BalancePath, g.Tunnel)
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	auto_https off
	persist_config off
	grace_period 2s
	log {
		format json
		level %s
	}
	servers {
		listener_wrappers {
			tildegate_rdp {
				%s
			}
			tls
		}
	}
}
https://127.0.0.1:%d {
	tls %s %s
	%s
	respond "gateway"
}
http://127.0.0.1:%d {
	%s
	respond "gateway"
}
`, g.Admin, g.HTTPPort, g.HTTPSPort, g.LogLevel, g.RDPOptions, g.HTTPSPort, g.env.CertFile, g.env.KeyFile, site, g.HTTPPort, site)
}

// Start starts the gateway (again) and waits for its ports.
func (g *Gateway) Start() {
	g.t.Helper()
	g.Process = StartProcess(g.t, "gateway", g.env.Caddy, "run", "--config", g.Caddyfile, "--adapter", "caddyfile")
	WaitPort(g.t, g.Process, g.Address(), 10*time.Second)
	WaitPort(g.t, g.Process, g.PlainAddress(), 10*time.Second)
}

// WriteBalance replaces the gateway's balance.bin.
func (g *Gateway) WriteBalance(content string) {
	g.t.Helper()
	if err := os.WriteFile(g.BalancePath, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// URL is an address on the gateway's TLS site.
func (g *Gateway) URL(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", g.HTTPSPort, path)
}

// Address is the gateway's TLS address for backbalance.bin.
func (g *Gateway) Address() string { return fmt.Sprintf("127.0.0.1:%d", g.HTTPSPort) }

// PlainAddress is the gateway's plain HTTP address.
func (g *Gateway) PlainAddress() string { return fmt.Sprintf("127.0.0.1:%d", g.HTTPPort) }

// Reload posts a Caddyfile to the admin API, as an operator would.
func (g *Gateway) Reload(caddyfile string) error {
	res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/load", g.Admin), "text/caddyfile", strings.NewReader(caddyfile))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST /load: %s: %s", res.Status, body)
	}
	return nil
}

// Client is an HTTP client that trusts the gateway's certificate.
func (e *Env) Client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: e.TLSConfig(), MaxIdleConnsPerHost: 128},
		Timeout:   60 * time.Second,
	}
}

// TLSConfig trusts the gateway's certificate.
func (e *Env) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(e.CAFile)
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool}
}

// StartAgent runs tildegate-agent with backbalance as its file.
func (e *Env) StartAgent(t testing.TB, name, backbalance string, args ...string) *Process {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backbalance.bin")
	if err := os.WriteFile(path, []byte(backbalance), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-config", path, "-ca", e.CAFile}, args...)
	return StartProcess(t, name, e.Agent, args...)
}

// StartAgentLimited is StartAgent with the agent's limit of open files
// set to openFiles, by prlimit(1).
func (e *Env) StartAgentLimited(t testing.TB, name, backbalance string, openFiles int, args ...string) *Process {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal("prlimit is missing: install util-linux")
	}
	path := filepath.Join(t.TempDir(), "backbalance.bin")
	if err := os.WriteFile(path, []byte(backbalance), 0o644); err != nil {
		t.Fatal(err)
	}
	limit := fmt.Sprintf("--nofile=%d", openFiles)
	return StartProcess(t, name, prlimit, append([]string{limit, e.Agent, "-config", path, "-ca", e.CAFile}, args...)...)
}

// BackbalanceLine is an agent entry for name with password, over TLS to the
// gateway at gatewayAddr, served by the local service at local.
func BackbalanceLine(name, password, gatewayAddr, local string) string {
	return fmt.Sprintf("SSL /~~%s=%s#%s => %s;\n", name, password, gatewayAddr, local)
}

// Get fetches url and returns the status and the body.
func Get(c *http.Client, url string) (int, string, error) {
	res, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}
