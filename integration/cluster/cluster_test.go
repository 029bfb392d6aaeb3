package cluster

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestRegistersOnEveryGateway: three gateways share storage and DNS
// answers their name with their three addresses; one agent registers on
// each (each gateway's admin API shows it), /ready says so and /status
// lists each address; HTTP requests and native RDP sessions through each
// gateway reach the agent's services.
func TestRegistersOnEveryGateway(t *testing.T) {
	c, d := threeGateways(t)
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	a := startAgent(t, c, d, entry(c, "home", local, e2e.EchoServer(t)))
	waitAllConnected(t, c, "home", 15*time.Second)
	a.waitReady(t, 5*time.Second)
	status := string(a.status(t))
	for _, g := range c.Gateways {
		if !strings.Contains(status, g.Address()) {
			t.Errorf("the agent's /status does not list %s:\n%s", g.Address(), status)
		}
		a.waitGatewayState(t, g.Address(), 5*time.Second, "is registered", registered)
		if n := registeredLogged(g, "home"); n != 1 {
			t.Errorf("%s logged %d registrations of home, want 1", g.Instance, n)
		}
	}
	for _, g := range c.Gateways {
		serves(t, g, "home")
		e2e.RDPEcho(t, g.Address(), "home", 20000)
	}
}

// TestGatewayKilled: one gateway dies (kill -9) while requests go through
// the other two, which serve every one of them; the agent is back on the
// restarted gateway within 10 s.
func TestGatewayKilled(t *testing.T) {
	c, d := threeGateways(t)
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	a := startAgent(t, c, d, entry(c, "home", local, ""))
	waitAllConnected(t, c, "home", 15*time.Second)

	victim, others := c.Gateways[0], c.Gateways[1:]
	var loads []*load
	for _, g := range others {
		l := startLoad(t, g, "/~~home/hello")
		l.waitServed(t, 20, 5*time.Second)
		loads = append(loads, l)
	}
	victim.Kill()
	a.waitGatewayState(t, victim.Address(), 10*time.Second, "is not registered", notRegistered)
	for _, l := range loads {
		l.waitServed(t, 50, 5*time.Second)
	}

	restarted := time.Now()
	victim.Start()
	victim.WaitConnected("home", true, 10*time.Second)
	t.Logf("back on the restarted gateway %s after it started", time.Since(restarted).Round(time.Millisecond))
	for _, l := range loads {
		l.waitServed(t, 20, 5*time.Second)
		l.check(t)
	}
	serves(t, victim, "home")
}

// TestGatewayHung: one gateway stops (SIGSTOP) with its connections open,
// as a hung host does; the other two serve every request meanwhile; the
// agent gives up its registration there after the dead time, which the
// gateway sees once it goes on (SIGCONT), and registers there again.
func TestGatewayHung(t *testing.T) {
	c, d := threeGateways(t)
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	a := startAgent(t, c, d, entry(c, "home", local, ""))
	waitAllConnected(t, c, "home", 15*time.Second)

	hung, others := c.Gateways[0], c.Gateways[1:]
	var loads []*load
	for _, g := range others {
		l := startLoad(t, g, "/~~home/hello")
		l.waitServed(t, 20, 5*time.Second)
		loads = append(loads, l)
	}
	closed := closedLogged(hung, "home")
	hung.Pause()
	// The tests' dead_after is 2s (e2e.TunnelBlock).
	took := a.waitGatewayState(t, hung.Address(), 6*time.Second, "is not registered", notRegistered)
	t.Logf("the agent gave up the hung gateway after %s", took.Round(time.Millisecond))
	for _, l := range loads {
		l.waitServed(t, 50, 5*time.Second)
	}

	hung.Resume()
	hung.Log.WaitFor(5*time.Second, closed, `"msg":"agent registration closed"`, `"name":"home"`)
	hung.WaitConnected("home", true, 10*time.Second)
	for _, l := range loads {
		l.check(t)
	}
	serves(t, hung, "home")
}

// TestDNSChanges: an address removed from DNS makes the agent leave that
// gateway within a re-resolve interval (the gateway sees the registration
// close) while the others keep it; added back, the agent joins it again.
func TestDNSChanges(t *testing.T) {
	c, d := threeGateways(t)
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	startAgent(t, c, d, entry(c, "home", local, ""))
	waitAllConnected(t, c, "home", 15*time.Second)

	removed := c.Gateways[2]
	closed := closedLogged(removed, "home")
	start := time.Now()
	d.Set(host, ips[:2]...)
	// One interval, and a moment for the agent to act on the answer.
	removed.WaitConnected("home", false, resolveInterval+1500*time.Millisecond)
	removed.Log.WaitFor(time.Second, closed, `"msg":"agent registration closed"`, `"name":"home"`)
	t.Logf("left the removed gateway after %s", time.Since(start).Round(time.Millisecond))
	for _, g := range c.Gateways[:2] {
		if !g.Connected("home") {
			t.Errorf("%s lost the agent when another address left DNS", g.Instance)
		}
		serves(t, g, "home")
	}

	start = time.Now()
	d.Set(host, ips...)
	removed.WaitConnected("home", true, resolveInterval+5*time.Second)
	t.Logf("joined the added gateway after %s", time.Since(start).Round(time.Millisecond))
	serves(t, removed, "home")
}

// TestOneRegistrationPerGateway: a gateway that an agent reaches at two
// addresses holds one registration of each of the agent's names: its
// challenges name the same instance at both. The agent reaches it by one
// name that DNS answers with both addresses (the gateway listens on
// both), and by two names, each entry by one of them, one name at both
// addresses and the other at one of them.
func TestOneRegistrationPerGateway(t *testing.T) {
	const alias = "alias.tildegate.test"
	for _, tc := range []struct {
		test    string
		aliases []string
		// dns gives each name's addresses.
		dns map[string][]string
		// hosts gives each entry's gateway host.
		hosts map[string]string
	}{
		{"two addresses", nil, map[string][]string{host: ips[:2]}, map[string]string{"home": host}},
		{"two names", []string{alias}, map[string][]string{host: ips[:2], alias: ips[1:2]},
			map[string]string{"home": host, "office": alias}},
	} {
		t.Run(tc.test, func(t *testing.T) {
			var names []string
			for name := range tc.hosts {
				names = append(names, name)
			}
			slices.Sort(names)
			d := e2e.StartDNS(t)
			c := e2e.StartCluster(t, env, e2e.ClusterSpec{Host: host, Aliases: tc.aliases,
				Balance: backBalance(names...), Binds: [][]string{ips[:2]}})
			for name, addrs := range tc.dns {
				d.Set(name, addrs...)
			}
			g := c.Gateways[0]
			local := e2e.LocalService(t, "home").Listener.Addr().String()
			var backbalance strings.Builder
			for _, name := range names {
				backbalance.WriteString(entryAt(net.JoinHostPort(tc.hosts[name], strconv.Itoa(c.Port)), name, local, ""))
			}
			a := startAgent(t, c, d, backbalance.String())
			for _, name := range names {
				g.WaitConnected(name, true, 15*time.Second)
			}
			a.waitReady(t, 5*time.Second)
			// Three more answers for each name: by then the agent has
			// been at every address more than once.
			queries := make(map[string]int64)
			for dnsName := range tc.dns {
				queries[dnsName] = d.Queries(dnsName)
			}
			for dnsName, n := range queries {
				e2e.WaitUntil(t, 5*resolveInterval, "three more DNS queries for "+dnsName, func() bool { return d.Queries(dnsName) >= n+3 })
			}
			for _, name := range names {
				if n := registeredLogged(g, name); n != 1 {
					t.Errorf("the gateway logged %d registrations of %s, want 1:\n%s", n, name, strings.Join(g.Log.Lines(`"msg":"agent registered"`), "\n"))
				}
				if n := closedLogged(g, name); n != 0 {
					t.Errorf("the gateway closed %d registrations of %s, want none:\n%s", n, name, strings.Join(g.Log.Lines(`"msg":"agent registration closed"`), "\n"))
				}
				serves(t, g, name)
			}
			// The agent learns the instance from the challenge, so the
			// gateway sees it stop there (or, in a race, be refused
			// name-taken) at the second address; those are no
			// registrations.
			t.Logf("the gateway turned away %d connections at the second address", len(g.Log.Lines(`"msg":"agent connection refused"`)))
			status := string(a.status(t))
			for _, ip := range ips[:2] {
				if addr := net.JoinHostPort(ip, strconv.Itoa(c.Port)); !strings.Contains(status, addr) {
					t.Errorf("the agent's /status does not list %s:\n%s", addr, status)
				}
			}
			if !strings.Contains(status, g.Instance) {
				t.Errorf("the agent's /status does not name the instance %s:\n%s", g.Instance, status)
			}
		})
	}
}
