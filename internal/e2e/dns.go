package e2e

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is a DNS server on a loopback port, over UDP and TCP, that
// answers A queries for the names it is given with a list of addresses
// that tests change while it runs. Names it does not know get NXDOMAIN;
// other query types for names it knows get an empty answer. Answers have
// a TTL of 0, so that nothing caches them.
type DNSServer struct {
	// Addr is the server's host:port, for the agent's -dns.
	Addr string

	mu    sync.Mutex
	names map[string][]net.IP
	// queries counts the A queries answered, by name.
	queries map[string]*atomic.Int64
}

// StartDNS starts a DNS server on 127.0.0.1; it stops when the test ends.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	d := &DNSServer{names: make(map[string][]net.IP), queries: make(map[string]*atomic.Int64)}
	// The UDP and TCP servers share the port: the UDP one takes a free
	// port and the TCP one must get the same.
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no loopback port free for both UDP and TCP")
	}
	d.Addr = pc.LocalAddr().String()
	handler := dns.HandlerFunc(d.serve)
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}}
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
	}
	t.Cleanup(func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	})
	return d
}

// Set makes the server answer name with addrs, IPv4 addresses such as
// "127.0.0.2"; no addresses makes it an empty answer.
func (d *DNSServer) Set(name string, addrs ...string) {
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		ip := net.ParseIP(a).To4()
		if ip == nil {
			panic("DNSServer.Set: not an IPv4 address: " + a)
		}
		ips = append(ips, ip)
	}
	key := dns.Fqdn(strings.ToLower(name))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names[key] = ips
	if d.queries[key] == nil {
		d.queries[key] = new(atomic.Int64)
	}
}

// Queries returns how many A queries for name the server has answered.
func (d *DNSServer) Queries(name string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.queries[dns.Fqdn(strings.ToLower(name))]; n != nil {
		return n.Load()
	}
	return 0
}

func (d *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	res := new(dns.Msg)
	res.SetReply(req)
	res.Authoritative = true
	if len(req.Question) != 1 {
		res.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(res)
		return
	}
	q := req.Question[0]
	key := strings.ToLower(q.Name)
	d.mu.Lock()
	ips, known := d.names[key]
	if known && q.Qtype == dns.TypeA {
		d.queries[key].Add(1)
	}
	d.mu.Unlock()
	switch {
	case !known:
		res.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		for _, ip := range ips {
			res.Answer = append(res.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   ip,
			})
		}
	}
	_ = w.WriteMsg(res)
}
