package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"

	"github.com/coder/websocket"
)

// entryPassword is the password of every agent entry; gateways accept it
// from any address.
const entryPassword = "Entry-pw-5150"

// registeredLine is in the agent's log line for each registration.
const registeredLine = "\tregistered\t"

// gatewayBalance is a balance.bin for the given entry names.
func gatewayBalance(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "SSL /~~%s=%s#:*;\n", n, entryPassword)
	}
	return b.String()
}

// hop is one proxy on the agent's way to the gateway.
type hop struct {
	squid *squid
	// login is written before "@" in backbalance.bin: "user:pass" for
	// Basic, `DOMAIN\user:pass` or `\user:pass` for NTLM, "" for none.
	login string
	// logged is the user squid's access.log shows, "-" for none.
	logged string
}

// scheme is how the agent logs in to the hop.
func (h hop) scheme() string {
	switch user, _, _ := strings.Cut(h.login, ":"); {
	case h.login == "":
		return "none"
	case strings.Contains(user, `\`):
		return "ntlm"
	}
	return "basic"
}

func (h hop) String() string {
	if h.login == "" {
		return h.squid.addr()
	}
	return h.login + "@" + h.squid.addr()
}

// password is the hop's password, "" for none.
func (h hop) password() string {
	_, pw, _ := strings.Cut(h.login, ":")
	return pw
}

// chainEntry is an agent entry for name that reaches g through hops and is
// served by local, with TLS to the gateway.
func chainEntry(name string, g *e2e.Gateway, local string, hops ...hop) string {
	parts := make([]string, len(hops))
	for i, h := range hops {
		parts[i] = h.String()
	}
	return fmt.Sprintf("SSL /~~%s=%s#%s -> %s => %s;\n", name, entryPassword, g.Address(), strings.Join(parts, " -> "), local)
}

// startChainAgent starts an agent for name through hops.
func startChainAgent(t *testing.T, name string, g *e2e.Gateway, local string, hops ...hop) *e2e.Process {
	t.Helper()
	return env.StartAgent(t, "agent "+name, chainEntry(name, g, local, hops...), "-log-level", "debug")
}

// checkHello asks the local service behind name for /hello through g.
func checkHello(t *testing.T, g *e2e.Gateway, name string) {
	t.Helper()
	status, body, err := e2e.Get(env.Client(), g.URL("/~~"+name+"/hello"))
	if want := "hello from " + name + ", path /hello, prefix /~~" + name; err != nil || status != http.StatusOK || body != want {
		t.Fatalf("request through the tunnel: %d %q %v, want 200 %q", status, body, err, want)
	}
}

// waitServed polls /hello of name until it answers 200.
func waitServed(t *testing.T, g *e2e.Gateway, name string, within time.Duration) {
	t.Helper()
	c := env.Client()
	c.Timeout = time.Second
	deadline := time.Now().Add(within)
	for {
		status, body, err := e2e.Get(c, g.URL("/~~"+name+"/hello"))
		if err == nil && status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/~~%s/hello not served within %s: %d %q %v", name, within, status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAccessLogs stops the agent, so that squid logs its tunnels, and
// checks that each hop logged a CONNECT to the next one (the last to the
// gateway) by the hop's user.
func checkAccessLogs(t *testing.T, agent *e2e.Process, g *e2e.Gateway, hops []hop) {
	t.Helper()
	agent.Stop()
	for i, h := range hops {
		target := g.Address()
		if i+1 < len(hops) {
			target = hops[i+1].squid.addr()
		}
		h.squid.waitAccess(t, 5*time.Second, "CONNECT", target, h.logged)
	}
}

// TestThroughProxies: an agent reaches its gateway, over TLS, through one
// squid with each login, and through cascades of two with different
// logins each way round.
func TestThroughProxies(t *testing.T) {
	t.Parallel()
	open := startSquid(t, noLogin)
	basic := startSquid(t, basicAuth, "myuser2:Basic-pw-2", "cascade1:Basic-pw-c1", "cascade2:Basic-pw-c2")
	ntlm := startSquid(t, ntlmAuth, `\myuser1:Ntlm-pw-1`, `mydomain\myuser1:Ntlm-pw-domain`,
		`\cascade3:Ntlm-pw-c3`, `corp\cascade4:Ntlm-pw-c4`)
	cases := []struct {
		name string
		hops []hop
	}{
		{"nologin", []hop{{open, "", "-"}}},
		{"basic", []hop{{basic, "myuser2:Basic-pw-2", "myuser2"}}},
		{"ntlm", []hop{{ntlm, `\myuser1:Ntlm-pw-1`, "myuser1"}}},
		{"ntlmdomain", []hop{{ntlm, `mydomain\myuser1:Ntlm-pw-domain`, `mydomain\\myuser1`}}},
		{"basicntlm", []hop{{basic, "cascade1:Basic-pw-c1", "cascade1"}, {ntlm, `corp\cascade4:Ntlm-pw-c4`, `corp\\cascade4`}}},
		{"ntlmbasic", []hop{{ntlm, `\cascade3:Ntlm-pw-c3`, "cascade3"}, {basic, "cascade2:Basic-pw-c2", "cascade2"}}},
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	g := e2e.StartGateway(t, env, gatewayBalance(names...))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			local := e2e.LocalService(t, c.name)
			agent := startChainAgent(t, c.name, g, local.Listener.Addr().String(), c.hops...)
			agent.Log.WaitFor(10*time.Second, 0, registeredLine, c.name)
			checkHello(t, g, c.name)
			checkAccessLogs(t, agent, g, c.hops)
			checkNoSecrets(t, agent, c.hops)
		})
	}
}

// checkNoSecrets fails if the agent's log shows a proxy password, in clear
// or in a Basic Proxy-Authorization.
func checkNoSecrets(t *testing.T, agent *e2e.Process, hops []hop) {
	t.Helper()
	log := agent.Log.String()
	for _, h := range hops {
		pw := h.password()
		if pw == "" {
			continue
		}
		basic := base64.StdEncoding.EncodeToString([]byte(h.login))
		for _, secret := range []string{pw, basic} {
			if strings.Contains(log, secret) {
				t.Errorf("the agent's log shows the password of %s (%q)", h.squid.addr(), secret)
			}
		}
	}
	if strings.Contains(log, entryPassword) {
		t.Errorf("the agent's log shows the entry's password")
	}
}

// TestRefusedLogin: a wrong password at either hop, for either login, or
// a login the proxy does not take, makes the agent log which proxy refused
// it and why, and nothing registers.
func TestRefusedLogin(t *testing.T) {
	t.Parallel()
	basic := startSquid(t, basicAuth, "good2:Good-basic-pw")
	ntlm := startSquid(t, ntlmAuth, `\good1:Good-ntlm-pw`, `corp\good3:Good-ntlm-pw3`)
	goodBasic := hop{basic, "good2:Good-basic-pw", "good2"}
	goodNTLM := hop{ntlm, `\good1:Good-ntlm-pw`, "good1"}
	badBasic := hop{basic, "good2:Wrong-basic-pw", ""}
	badNTLM := hop{ntlm, `\good1:Wrong-ntlm-pw`, ""}
	badNTLMDomain := hop{ntlm, `corp\good3:Wrong-ntlm-pw3`, ""}
	const wrong = "the proxy refused the login"
	cases := []struct {
		name   string
		hops   []hop
		bad    int    // index of the refusing hop
		reason string // what the agent says of it
	}{
		{"basic", []hop{badBasic}, 0, wrong},
		{"ntlm", []hop{badNTLM}, 0, wrong},
		{"ntlmdomain", []hop{badNTLMDomain}, 0, wrong},
		{"basicfirst", []hop{badBasic, goodNTLM}, 0, wrong},
		{"basicsecond", []hop{goodNTLM, badBasic}, 1, wrong},
		{"ntlmfirst", []hop{badNTLM, goodBasic}, 0, wrong},
		{"ntlmsecond", []hop{goodBasic, badNTLM}, 1, wrong},
		{"nologin", []hop{goodNTLM, {basic, "", ""}}, 1, "asks for a login"},
		{"basicatntlm", []hop{{ntlm, "good1:Good-ntlm-pw", ""}}, 0, "offers only NTLM"},
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	g := e2e.StartGateway(t, env, gatewayBalance(names...))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			local := e2e.LocalService(t, c.name)
			agent := startChainAgent(t, c.name, g, local.Listener.Addr().String(), c.hops...)
			bad := c.hops[c.bad]
			want := []string{
				fmt.Sprintf("proxy %d of %d", c.bad+1, len(c.hops)),
				bad.squid.addr(),
				"(" + bad.scheme() + ")",
				"407",
				c.reason,
			}
			agent.Log.WaitFor(10*time.Second, 0, want...)
			t.Logf("the agent logs: %s", agent.Log.First(want...))
			if bad.scheme() == "ntlm" {
				// The refusal is the helper's verdict on the password,
				// not a broken handshake.
				user, _, _ := strings.Cut(strings.TrimPrefix(bad.login, `\`), ":")
				bad.squid.waitCacheLog(t, 5*time.Second, "ntlmhelper: rejected: "+user+": wrong password")
			}
			// Were the agent to fall back to another way in (such as a
			// direct connection), it would register within this time.
			time.Sleep(time.Second)
			if n := g.Log.Count("agent registered", `"`+c.name+`"`); n > 0 {
				t.Errorf("the gateway registered %s %d times with a wrong proxy password", c.name, n)
			}
			if line := agent.Log.First(registeredLine); line != "" {
				t.Errorf("the agent registered with a wrong proxy password: %s", line)
			}
			checkNoSecrets(t, agent, c.hops)
		})
	}
}

// TestWholePath: agent -> squid (NTLM with a domain) -> squid (Basic) ->
// gateway over TLS, then a request, a websocket echo and 100 MiB each way
// through the tunnel.
func TestWholePath(t *testing.T) {
	t.Parallel()
	ntlm := startSquid(t, ntlmAuth, `mydomain\myuser1:Ntlm-pw-whole`)
	basic := startSquid(t, basicAuth, "myuser2:Basic-pw-whole")
	hops := []hop{{ntlm, `mydomain\myuser1:Ntlm-pw-whole`, `mydomain\\myuser1`}, {basic, "myuser2:Basic-pw-whole", "myuser2"}}
	g := e2e.StartGateway(t, env, gatewayBalance("srv1"))
	local := e2e.LocalService(t, "srv1")
	agent := startChainAgent(t, "srv1", g, local.Listener.Addr().String(), hops...)
	agent.Log.WaitFor(10*time.Second, 0, registeredLine, "srv1")
	checkHello(t, g, "srv1")

	ws := env.DialEcho(t, g.URL("/~~srv1/ws"))
	for _, msg := range []string{"hello", strings.Repeat("abc", 100_000)} {
		got, err := e2e.Echo(ws, msg)
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("websocket echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")

	const size = 100 << 20
	c := env.Client()
	start := time.Now()
	res, err := c.Get(g.URL(fmt.Sprintf("/~~srv1/download?size=%d", size)))
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	res.Body.Close()
	if sum := hex.EncodeToString(h.Sum(nil)); err != nil || n != size || sum != e2e.PatternSum(size) {
		t.Fatalf("download of %d bytes: got %d bytes, checksum match %v, %v", size, n, sum == e2e.PatternSum(size), err)
	}
	t.Logf("download of 100 MiB: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	res, err = c.Post(g.URL("/~~srv1/upload"), "application/octet-stream", e2e.PatternReader(size))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("%d %s", size, e2e.PatternSum(size)); string(got) != want {
		t.Fatalf("upload of 100 MiB: the service got %q, want %q", got, want)
	}
	t.Logf("upload of 100 MiB: %s", time.Since(start).Round(time.Millisecond))

	checkAccessLogs(t, agent, g, hops)
	checkNoSecrets(t, agent, hops)
}

// TestSquidRestart: the NTLM proxy of a cascade restarts while the agent
// runs; the agent registers again through it and requests are served again.
func TestSquidRestart(t *testing.T) {
	t.Parallel()
	ntlm := startSquid(t, ntlmAuth, `\myuser1:Ntlm-pw-restart`)
	basic := startSquid(t, basicAuth, "myuser2:Basic-pw-restart")
	hops := []hop{{ntlm, `\myuser1:Ntlm-pw-restart`, "myuser1"}, {basic, "myuser2:Basic-pw-restart", "myuser2"}}
	g := e2e.StartGateway(t, env, gatewayBalance("srv1"))
	local := e2e.LocalService(t, "srv1")
	agent := startChainAgent(t, "srv1", g, local.Listener.Addr().String(), hops...)
	agent.Log.WaitFor(10*time.Second, 0, registeredLine, "srv1")
	checkHello(t, g, "srv1")

	for i, sq := range []*squid{ntlm, basic} {
		before := agent.Log.Count(registeredLine, "srv1")
		start := time.Now()
		sq.restart()
		agent.Log.WaitFor(15*time.Second, before, registeredLine, "srv1")
		waitServed(t, g, "srv1", 10*time.Second)
		t.Logf("served again %s after restarting proxy %d", time.Since(start).Round(time.Millisecond), i+1)
	}
	checkHello(t, g, "srv1")
	checkNoSecrets(t, agent, hops)
}
