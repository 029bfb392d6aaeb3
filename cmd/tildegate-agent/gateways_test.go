package main

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// dnsServer is a DNS server on loopback, over UDP, that answers A queries
// for testgateway.ClusterHost with the addresses the test sets.
type dnsServer struct {
	addr  string
	mu    sync.Mutex
	hosts []net.IP
}

// startDNS starts a dnsServer that resolves testgateway.ClusterHost to the
// addresses of gs.
func startDNS(t *testing.T, gs ...*testgateway.Gateway) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String()}
	d.set(gs...)
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.answer), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// set makes testgateway.ClusterHost resolve to the addresses of gs.
func (d *dnsServer) set(gs ...*testgateway.Gateway) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hosts = nil
	for _, g := range gs {
		d.hosts = append(d.hosts, net.ParseIP(g.Addr.Host))
	}
}

func (d *dnsServer) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, question := range q.Question {
		if !strings.EqualFold(question.Name, testgateway.ClusterHost+".") {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if question.Qtype != dns.TypeA {
			continue
		}
		for _, ip := range d.hosts {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 1}, A: ip})
		}
	}
	w.WriteMsg(m)
}

// clusterLine returns a backbalance.bin line for name at the gateways of
// a testgateway.Cluster, by their host name.
func clusterLine(g *testgateway.Gateway, name, local string) string {
	return strings.Replace(g.Line(name, "pw", local), g.Addr.Host, testgateway.ClusterHost, 1)
}

// TestCheckAddresses: -check says which addresses each gateway resolves
// to, with the DNS server of -dns, or why it does not resolve.
func TestCheckAddresses(t *testing.T) {
	gs := testgateway.Cluster(t, 3, false, map[string]string{"home": "pw"})
	d := startDNS(t, gs...)
	path := writeConfig(t, clusterLine(gs[0], "home", "")+"/~~lit=pw#127.0.0.9:80;\n/~~gone=pw#gone.test:80;\n")
	code, out, stderr := runCommand(t, "-check", "-dns", d.addr, "-config", path)
	if code != 0 {
		t.Fatalf("-check: status %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		"resolves (DNS server " + d.addr + ") to " + gs[0].Addr.String() + ", " + gs[1].Addr.String() + ", " + gs[2].Addr.String() +
			": a registration at each address, one per gateway instance",
		"at the address 127.0.0.9:80\n",
		"cannot resolve the gateway (DNS server " + d.addr + "): resolving gone.test: no such host; retries every 1m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
	for _, args := range [][]string{{"-dns", "nowhere"}, {"-resolve-interval", "0s"}} {
		if code, _, stderr := runCommand(t, append(args, "-check", "-config", path)...); code != 2 || !strings.Contains(stderr, args[0]) {
			t.Errorf("%v: status %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestServeGateways: the agent registers at every address that -dns gives
// for the gateway, follows the DNS every -resolve-interval, and is ready
// while one address is registered.
func TestServeGateways(t *testing.T) {
	gs := testgateway.Cluster(t, 3, true, map[string]string{"home": "pw"})
	d := startDNS(t, gs[0], gs[1])
	path := writeConfig(t, clusterLine(gs[0], "home", localService(t)))
	p := startCommand(t, "-config", path, "-ca", gs[0].CAFile, "-dns", d.addr, "-resolve-interval", "100ms",
		"-status-addr", "127.0.0.1:0")
	addr := statusAddress(t, p)
	c0 := testgateway.Receive(t, gs[0].Controls, "the registration at the first gateway")
	testgateway.Receive(t, gs[1].Controls, "the registration at the second gateway")
	waitJSON(t, addr, "/ready", http.StatusOK, "ready", func(r readyAnswer) bool { return r.Ready })
	st := waitJSON(t, addr, "/status", http.StatusOK, "two addresses registered", func(s statusAnswer) bool {
		if len(s.Entries) != 1 || len(s.Entries[0].Gateways) != 2 {
			return false
		}
		for _, g := range s.Entries[0].Gateways {
			if g.State != agent.StateRegistered {
				return false
			}
		}
		return true
	})
	for i, g := range st.Entries[0].Gateways {
		if g.Address != gs[i].Addr.String() || g.State != agent.StateRegistered || g.Instance != []string{"gw-1", "gw-2"}[i] ||
			g.RegisteredSince.IsZero() {
			t.Errorf("/status of the address %d: %+v", i, g)
		}
	}

	d.set(gs[0], gs[2])
	testgateway.Receive(t, gs[2].Controls, "the registration at the address that joined")
	p.waitLog(t, "a gateway address left the DNS", gs[1].Addr.String())
	waitJSON(t, addr, "/status", http.StatusOK, "the DNS followed", func(s statusAnswer) bool {
		g := s.Entries[0].Gateways
		return len(g) == 2 && g[0].Address == gs[0].Addr.String() && g[1].Address == gs[2].Addr.String() &&
			g[1].State == agent.StateRegistered
	})

	c0.Open(wire.KindMux)
	b := testgateway.Receive(t, gs[0].Backs, "a back connection at the first gateway")
	if code, body := b.Request(t, "GET", "/via-first", ""); code != 200 || body != "local /via-first" {
		t.Errorf("request through the first gateway: %d %q", code, body)
	}

	gs[0].Stop()
	r := waitJSON(t, addr, "/ready", http.StatusOK, "still ready", func(r readyAnswer) bool { return r.Ready })
	if r.Entries != 1 {
		t.Errorf("/ready with a gateway down: %+v", r)
	}
	waitJSON(t, addr, "/status", http.StatusOK, "the first gateway down", func(s statusAnswer) bool {
		g := s.Entries[0].Gateways
		return s.Entries[0].State == agent.StateRegistered && len(g) == 2 && g[0].State != agent.StateRegistered
	})
	gs[2].Stop()
	waitJSON(t, addr, "/ready", http.StatusServiceUnavailable, "no gateway left", func(r readyAnswer) bool { return !r.Ready })
}
