// Package rdp tests native RDP through the gateway with real programs: the
// Caddy binary with tildegate, xfreerdp under Xvfb as the client, xrdp and
// FreeRDP's shadow server as the servers, and tildegate-agent for servers
// behind an agent.
package rdp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// env has the binaries under test, built once for the package.
var env *e2e.Env

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "../..", &env, nil))
}

// assertConnected fails the test unless xfreerdp went through the whole
// connection sequence with the security protocol wanted.
func assertConnected(t *testing.T, what string, code int, output, security string) {
	t.Helper()
	if code != 0 || !e2e.RDPActive(output) || e2e.RDPSecurity(output) != security {
		t.Fatalf("%s: xfreerdp exit code %d, active %v, security %q; want 0, true, %q; its output:\n%s",
			what, code, e2e.RDPActive(output), e2e.RDPSecurity(output), security, output)
	}
}

// TestXfreerdpThroughGateway: xfreerdp reaches xrdp on the port that serves
// HTTPS and HTTP/2, by its mstshash cookie and by a routing token, to an
// RDPPORT target and to a name's web entry; an unknown name is refused.
func TestXfreerdpThroughGateway(t *testing.T) {
	display := e2e.StartXvfb(t)
	xrdp := e2e.StartXrdp(t, env)
	web := e2e.LocalService(t, "web")
	balance := fmt.Sprintf("/~~srv1=%s;\n/~~srv1=%s RDPPORT;\n/~~portal=%s;\n",
		strings.TrimPrefix(web.URL, "http://"), xrdp.Address(), xrdp.Address())
	g := e2e.StartGateway(t, env, balance)

	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: env.TLSConfig(), ForceAttemptHTTP2: true}}
	res, err := h2.Get(g.URL("/~~srv1/hello"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("HTTPS on the RDP port: %s %s", res.Proto, res.Status)
	}

	code, out := e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:/~~srv1")
	assertConnected(t, "mstshash", code, out, "TLS")
	code, out = e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:someone", "/load-balance-info:/~~SRV1")
	assertConnected(t, "routing token", code, out, "TLS")
	// Without an RDPPORT line, RDP goes to the web entry's host and port.
	code, out = e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:/~~portal")
	assertConnected(t, "web entry", code, out, "TLS")
	g.Log.WaitFor(5*time.Second, 0, "rdp connection opened", `"name":"portal"`, `"target":"`+xrdp.Address()+`"`)

	code, out = e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:/~~nosuch")
	if code == 0 || e2e.RDPActive(out) {
		t.Fatalf("an unknown name connected: exit code %d; output:\n%s", code, out)
	}
	g.Log.WaitFor(5*time.Second, 0, "rdp connection refused", `no server named \"nosuch\"`, `"remote_addr":"127.0.0.1:`)

	// The web still works after the RDP connections.
	res, err = h2.Get(g.URL("/~~srv1/hello"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS after RDP: %s", res.Status)
	}
	g.Log.WaitFor(5*time.Second, 0, "rdp connection closed", `"name":"srv1"`, `"bytes_to_client":`)
}

// TestXfreerdpThroughAgent: RDP for a back entry goes through a back
// connection to the agent, which connects to the RDP service its
// backbalance.bin names.
func TestXfreerdpThroughAgent(t *testing.T) {
	display := e2e.StartXvfb(t)
	xrdp := e2e.StartXrdp(t, env)
	web := e2e.LocalService(t, "web")
	g := e2e.StartGateway(t, env, "/~~home=secret#:*;\n")
	line := fmt.Sprintf("SSL /~~home=secret#%s => %s RDPPORT %s;\n",
		g.Address(), strings.TrimPrefix(web.URL, "http://"), xrdp.Address())
	agent := env.StartAgent(t, "agent", line)
	agent.Log.WaitFor(10*time.Second, 0, "registered")

	code, out := e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:/~~home")
	assertConnected(t, "through the agent", code, out, "TLS")
	g.Log.WaitFor(5*time.Second, 0, "rdp connection opened", `"name":"home"`, `"target":"agent home"`)

	// With the agent gone, RDP is refused with the reason.
	agent.Stop()
	g.Log.WaitFor(10*time.Second, 0, "agent registration closed", `"name":"home"`)
	code, _ = e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/u:/~~home")
	if code == 0 {
		t.Fatal("RDP connected with no agent")
	}
	g.Log.WaitFor(5*time.Second, 0, "rdp connection refused", "no agent connected for home")
}

// TestNLAThroughGateway: with NLA, the right password reaches the active
// state through the gateway and a wrong one fails as it does directly.
// The routing token is taken out, so the shadow server, which refuses
// one, accepts the connection.
func TestNLAThroughGateway(t *testing.T) {
	display := e2e.StartXvfb(t)
	shadow := e2e.StartShadow(t, display, "alice", "s3cret")
	g := e2e.StartGateway(t, env, fmt.Sprintf("/~~desk=%s RDPPORT;\n", shadow.Address()))

	route := "/load-balance-info:/~~desk"
	code, out := e2e.RunXfreerdp(t, display, "/v:"+g.Address(), route, "/u:alice", "/p:s3cret")
	assertConnected(t, "NLA, right password", code, out, "NLA")

	direct, _ := e2e.RunXfreerdp(t, display, "/v:"+shadow.Address(), "/u:alice", "/p:wrong")
	code, out = e2e.RunXfreerdp(t, display, "/v:"+g.Address(), route, "/u:alice", "/p:wrong")
	if code == 0 || e2e.RDPActive(out) || code != direct {
		t.Fatalf("NLA, wrong password: exit code %d through the gateway, %d directly; output:\n%s", code, direct, out)
	}
}

// TestRDPSessionSurvivesReload: a lasting session stays connected through
// config reloads and a balance.bin edit, and is logged with its byte
// counts and duration when it ends.
func TestRDPSessionSurvivesReload(t *testing.T) {
	display := e2e.StartXvfb(t)
	shadow := e2e.StartShadow(t, display, "alice", "s3cret")
	g := e2e.StartGateway(t, env, fmt.Sprintf("/~~desk=%s RDPPORT;\n", shadow.Address()))

	client := e2e.StartXfreerdp(t, display, "/v:"+g.Address(), "/load-balance-info:/~~desk", "/u:alice", "/p:s3cret")
	client.Log.WaitFor(15*time.Second, 0, "CONNECTION_STATE_ACTIVE")
	opened := time.Now()
	for i := range 3 {
		g.RDPOptions = fmt.Sprintf("max_conns_per_name %d", 10+i)
		if err := g.Reload(g.Config()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	g.WriteBalance(fmt.Sprintf("/~~desk=%s RDPPORT;\n/~~other=127.0.0.1:1 RDPPORT;\n", shadow.Address()))
	g.Log.WaitFor(5*time.Second, 0, "balance files reloaded")
	time.Sleep(time.Second)
	if client.Exited() || g.Log.Count("rdp connection closed") > 0 {
		t.Fatalf("the session ended during the reloads; client log:\n%s", client.Log)
	}
	// A second session after the reloads uses the new config.
	code, out := e2e.RunXfreerdp(t, display, "/v:"+g.Address(), "/load-balance-info:/~~desk", "/u:alice", "/p:s3cret")
	assertConnected(t, "after the reloads", code, out, "NLA")

	g.Log.WaitFor(5*time.Second, 0, "rdp connection closed")

	lasted := time.Since(opened)
	client.Stop()
	g.Log.WaitFor(10*time.Second, 1, "rdp connection closed")
	for line := range strings.Lines(g.Log.String()) {
		var entry struct {
			Msg        string  `json:"msg"`
			Duration   float64 `json:"duration"`
			FromClient int64   `json:"bytes_from_client"`
			ToClient   int64   `json:"bytes_to_client"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(line)), &entry) != nil || entry.Msg != "rdp connection closed" {
			continue
		}
		if entry.Duration >= lasted.Seconds() && entry.FromClient > 0 && entry.ToClient > 0 {
			t.Logf("a session of %.1fs across 3 reloads and an edit: %d bytes from the client, %d to it",
				entry.Duration, entry.FromClient, entry.ToClient)
			return
		}
	}
	t.Fatalf("no log of the session lasting %s with its bytes:\n%s", lasted, g.Log)
}

// TestXfreerdpOnPlainHTTPPort: on the gateway's plain HTTP site (an http://
// address, no TLS before Caddy), xfreerdp connects, several at once, and
// plain HTTP/1.1 and HTTP/2 with prior knowledge keep working on the port.
func TestXfreerdpOnPlainHTTPPort(t *testing.T) {
	display := e2e.StartXvfb(t)
	xrdp := e2e.StartXrdp(t, env)
	g := e2e.StartGateway(t, env, fmt.Sprintf("/~~srv1=%s RDPPORT;\n", xrdp.Address()))

	const clients = 4
	type result struct {
		code int
		out  string
	}
	results := make(chan result, clients)
	for range clients {
		go func() {
			code, out := e2e.RunXfreerdp(t, display, "/v:"+g.PlainAddress(), "/u:/~~srv1")
			results <- result{code, out}
		}()
	}
	for i := range clients {
		r := <-results
		assertConnected(t, fmt.Sprintf("client %d on the plain HTTP port", i), r.code, r.out, "TLS")
	}

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	for proto, c := range map[int]*http.Client{
		1: {Timeout: 10 * time.Second},
		2: {Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &protocols}},
	} {
		res, err := c.Get("http://" + g.PlainAddress() + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ProtoMajor != proto {
			t.Errorf("plain HTTP/%d after RDP: %s %s", proto, res.Proto, res.Status)
		}
	}
	g.Log.WaitFor(10*time.Second, clients-1, "rdp connection closed", `"name":"srv1"`, `"bytes_to_client":`)
}
