package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClusterSpec describes gateways that work together: they share Caddy's
// storage, and with it the internal CA that signs the certificate of
// their host name, and each listens on its own loopback addresses (all of
// 127.0.0.0/8 is loopback on Linux), all on one port.
type ClusterSpec struct {
	// Host is the host name of the gateways' site, such as
	// "gw.tildegate.test"; the agent finds the gateways by asking DNS for
	// it.
	Host string
	// Aliases are more host names of the site, such as a second name
	// for the same gateways; the CA signs them too.
	Aliases []string
	// Balance is the gateways' balance.bin.
	Balance string
	// Binds are the gateways' addresses: one gateway per element, bound
	// to each address of it, such as {{"127.0.0.2"}, {"127.0.0.3"}}.
	Binds [][]string
}

// Cluster is gateways started from a ClusterSpec.
type Cluster struct {
	ClusterSpec
	// Port is the TLS port of every gateway.
	Port int
	// Storage is the folder of the shared storage.
	Storage  string
	Gateways []*ClusterGateway
	t        testing.TB
	env      *Env
}

// ClusterGateway is one gateway of a Cluster: a Caddy binary with a TLS
// site for the cluster's host name (tls internal), native RDP on its
// port, and its own instance id.
type ClusterGateway struct {
	*Process
	c *Cluster
	// IPs are the addresses the gateway listens on.
	IPs []string
	// Instance is the gateway's instance_id.
	Instance               string
	Admin                  int
	BalancePath, Caddyfile string
}

// StartCluster starts the gateways of spec, named gw-1, gw-2 and so on
// (their instance ids too). The first one creates the internal CA in the
// shared storage; the others start once it serves, so that they all use
// that CA.
func StartCluster(t testing.TB, env *Env, spec ClusterSpec) *Cluster {
	t.Helper()
	var all []string
	for _, ips := range spec.Binds {
		all = append(all, ips...)
	}
	c := &Cluster{ClusterSpec: spec, Port: FreePortOn(t, all...), Storage: t.TempDir(), t: t, env: env}
	for i, ips := range spec.Binds {
		dir := t.TempDir()
		g := &ClusterGateway{
			c: c, IPs: ips, Instance: fmt.Sprintf("gw-%d", i+1), Admin: FreePort(t),
			BalancePath: filepath.Join(dir, "balance.bin"), Caddyfile: filepath.Join(dir, "Caddyfile"),
		}
		if err := os.WriteFile(g.BalancePath, []byte(spec.Balance), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(g.Caddyfile, []byte(g.Config()), 0o644); err != nil {
			t.Fatal(err)
		}
		c.Gateways = append(c.Gateways, g)
	}
	for _, g := range c.Gateways {
		g.Start()
	}
	return c
}

// CARoot is the internal CA's root certificate in the shared storage,
// the agent's -ca.
func (c *Cluster) CARoot() string {
	return filepath.Join(c.Storage, "pki", "authorities", "local", "root.crt")
}

// Gateway is the gateway's host:port for backbalance.bin.
func (c *Cluster) Gateway() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Config is the gateway's Caddyfile.
func (g *ClusterGateway) Config() string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	default_bind %s
	auto_https disable_redirects
	skip_install_trust
	persist_config off
	grace_period 2s
	storage file_system {
		root %s
	}
	log {
		format json
		level DEBUG
	}
	servers {
		listener_wrappers {
			tildegate_rdp
			tls
		}
	}
}
%s {
	tls internal
	tildegate {
		balance_file %s
		instance_id %s
		%s
	}
	respond "gateway %s"
}
`, g.Admin, FreePort(g.c.t), g.c.Port, strings.Join(g.IPs, " "), g.c.Storage,
		g.c.siteAddresses(), g.BalancePath, g.Instance, TunnelBlock, g.Instance)
}

// siteAddresses are the site's addresses in a Caddyfile: the host name
// and the aliases, on the cluster's port.
func (c *Cluster) siteAddresses() string {
	addrs := make([]string, 0, 1+len(c.Aliases))
	for _, h := range append([]string{c.Host}, c.Aliases...) {
		addrs = append(addrs, "https://"+net.JoinHostPort(h, strconv.Itoa(c.Port)))
	}
	return strings.Join(addrs, ", ")
}

// Start starts the gateway (again) and waits until it serves its site
// with a certificate of the shared CA.
func (g *ClusterGateway) Start() {
	g.c.t.Helper()
	g.Process = StartProcess(g.c.t, g.Instance, g.c.env.Caddy, "run", "--config", g.Caddyfile, "--adapter", "caddyfile")
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A new client each time: the first gateway writes the CA's
		// root while it starts.
		client := g.Client()
		status, body, err := Get(client, g.URL("/"))
		client.CloseIdleConnections()
		if err == nil && status == http.StatusOK && body == "gateway "+g.Instance {
			return
		}
		if g.Exited() {
			g.c.t.Fatalf("%s exited (%v) before serving; its output:\n%s", g.Instance, g.Cmd.ProcessState, g.Log)
		}
		if time.Now().After(deadline) {
			g.c.t.Fatalf("%s does not serve %s after 20s: %d %q %v", g.Instance, g.URL("/"), status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Address is the gateway's first address and port, where RDP clients
// connect.
func (g *ClusterGateway) Address() string {
	return net.JoinHostPort(g.IPs[0], strconv.Itoa(g.c.Port))
}

// URL is an address on the cluster's site; Client sends it to this
// gateway.
func (g *ClusterGateway) URL(path string) string {
	return "https://" + g.c.Gateway() + path
}

// Client is an HTTP client that connects to this gateway whatever the
// URL's host, and trusts the cluster's CA; it gives up on a request
// after 10 s.
func (g *ClusterGateway) Client() *http.Client {
	var d net.Dialer
	addr := g.Address()
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:     g.c.tlsConfig(),
			MaxIdleConnsPerHost: 64,
		},
		Timeout: 10 * time.Second,
	}
}

// tlsConfig trusts the cluster's CA, whose root the first gateway has
// written by the time anything calls it; until then it trusts nothing.
func (c *Cluster) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(c.CARoot()); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: pool, ServerName: c.Host}
}

// RegisteredAgent is what a gateway's admin API says of a back entry's
// agent.
type RegisteredAgent struct {
	Name      string `json:"name"`
	Connected bool   `json:"connected"`
	// Address is the agent's address as the gateway sees it.
	Address string `json:"address"`
}

// Agents asks the gateway's admin API for its back entries and their
// agents.
func (g *ClusterGateway) Agents() ([]RegisteredAgent, error) {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/tildegate/agents", g.Admin))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /tildegate/agents: %s", res.Status)
	}
	var agents []RegisteredAgent
	return agents, json.NewDecoder(res.Body).Decode(&agents)
}

// Connected reports whether an agent holds name on the gateway, by its
// admin API; false when the API does not answer.
func (g *ClusterGateway) Connected(name string) bool {
	agents, err := g.Agents()
	if err != nil {
		return false
	}
	for _, a := range agents {
		if a.Name == name {
			return a.Connected
		}
	}
	return false
}

// WaitConnected waits until the gateway's admin API says that an agent
// holds name (connected true) or that none does (false), and fails the
// test if that takes longer than within.
func (g *ClusterGateway) WaitConnected(name string, connected bool, within time.Duration) {
	g.c.t.Helper()
	deadline := time.Now().Add(within)
	for g.Connected(name) != connected {
		if time.Now().After(deadline) {
			agents, err := g.Agents()
			g.c.t.Fatalf("%s: %s connected is not %v after %s: %+v %v", g.Instance, name, connected, within, agents, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
