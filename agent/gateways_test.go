package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// fakeDNS answers the lookups of testgateway.ClusterHost with the
// addresses the test sets.
type fakeDNS struct {
	mu      sync.Mutex
	addrs   []netip.Addr
	err     error
	lookups atomic.Int64
}

// set makes the host resolve to the addresses of gs.
func (d *fakeDNS) set(gs ...*testgateway.Gateway) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs, d.err = nil, nil
	for _, g := range gs {
		d.addrs = append(d.addrs, netip.MustParseAddr(g.Addr.Host))
	}
}

// fail makes lookups fail.
func (d *fakeDNS) fail() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs, d.err = nil, &net.DNSError{Err: "no such host", Name: testgateway.ClusterHost, IsNotFound: true}
}

func (d *fakeDNS) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	d.lookups.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if host != testgateway.ClusterHost {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(d.addrs), d.err
}

// cluster starts n TLS gateways behind testgateway.ClusterHost and returns
// them, the DNS that resolves the host to all of them, agent options that
// use it and look it up every 100 ms, and an entry for name.
func cluster(t *testing.T, n int, name, local string) ([]*testgateway.Gateway, *fakeDNS, Options, balancebin.BackEntry) {
	t.Helper()
	gs := testgateway.Cluster(t, n, true, map[string]string{name: "pw"})
	dns := &fakeDNS{}
	dns.set(gs...)
	opts := Options{CAFile: gs[0].CAFile, Lookup: dns.lookup, ResolveInterval: 100 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	e := gs[0].Entry(name, "pw", local)
	e.Gateway.Host = testgateway.ClusterHost
	return gs, dns, opts, e
}

// registeredAt returns a condition of waitStatus: the entry is registered
// at exactly the addresses of gs, each on its instance.
func registeredAt(gs ...*testgateway.Gateway) func(EntryStatus) bool {
	return func(s EntryStatus) bool {
		var got []string
		for _, g := range s.Gateways {
			if g.State == StateRegistered {
				got = append(got, g.Address+" "+g.Instance)
			}
		}
		var want []string
		for _, g := range gs {
			want = append(want, g.Addr.String()+" "+instanceOf(g))
		}
		slices.Sort(want)
		return s.State == StateRegistered && slices.Equal(got, want)
	}
}

// instanceOf returns the instance a gateway of testgateway.Cluster says.
func instanceOf(g *testgateway.Gateway) string {
	var in string
	g.Set(func(s *testgateway.Settings) { in = s.Instance })
	return in
}

// TestEveryGatewayAddress: an entry whose gateway host resolves to three
// addresses registers at each, with TLS verified against the host name,
// and each back connection goes to the gateway that asked for it.
func TestEveryGatewayAddress(t *testing.T) {
	gs, _, opts, e := cluster(t, 3, "home", localHTTP(t))
	a := startAgent(t, opts, e)
	var controls []*testgateway.Control
	for _, g := range gs {
		c := testgateway.Receive(t, g.Controls, "a control connection at "+g.Addr.String())
		if !c.Bound {
			t.Errorf("%s: the registration is not bound to TLS", g.Addr)
		}
		controls = append(controls, c)
	}
	s := waitStatus(t, a.Agent, 0, "registrations at the 3 addresses", registeredAt(gs...))
	if s.Registrations.Registered != 3 || s.RegisteredSince.IsZero() || s.ByName || s.ResolveError != "" {
		t.Errorf("status: %+v", s)
	}
	for i, g := range gs {
		controls[i].Open(wire.KindMux)
		back := testgateway.Receive(t, g.Backs, "a back connection at "+g.Addr.String())
		if code, body := back.Request(t, "GET", "/x", ""); code != 200 || body != "local /x " {
			t.Errorf("%s: request through the back connection: %d %q", g.Addr, code, body)
		}
	}
	for _, g := range gs {
		if n := len(g.Backs); n != 0 {
			t.Errorf("%s: %d back connections more than it asked for", g.Addr, n)
		}
	}
	if got := waitStatus(t, a.Agent, 0, "the back connections", func(s EntryStatus) bool { return s.BackConnections == 3 }); got.Sessions.HTTP.Total != 3 {
		t.Errorf("sessions: %+v", got.Sessions)
	}
}

// TestFollowsDNS: an address that leaves the DNS is closed, one that joins
// is registered at, within a lookup interval or so; a lookup that fails
// keeps the registrations.
func TestFollowsDNS(t *testing.T) {
	gs, dns, opts, e := cluster(t, 3, "home", "")
	dns.set(gs[0], gs[1])
	a := startAgent(t, opts, e)
	testgateway.Receive(t, gs[0].Controls, "a control connection at the first gateway")
	left := testgateway.Receive(t, gs[1].Controls, "a control connection at the second gateway")
	waitStatus(t, a.Agent, 0, "two registrations", registeredAt(gs[0], gs[1]))

	dns.set(gs[0], gs[2])
	f := testgateway.Receive(t, left.Frames, "the CLOSE of the address that left the DNS")
	if f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown || f.Reason != reasonLeftDNS {
		t.Errorf("frame at the address that left: %+v", f)
	}
	testgateway.Receive(t, gs[2].Controls, "a control connection at the address that joined")
	waitStatus(t, a.Agent, 0, "the registrations that follow the DNS", registeredAt(gs[0], gs[2]))
	a.waitLog(t, "a gateway address left the DNS", "address", gs[1].Addr.String())
	a.waitLog(t, "a gateway address joined the DNS", "address", gs[2].Addr.String())

	dns.fail()
	s := waitStatus(t, a.Agent, 0, "the failed lookup", func(s EntryStatus) bool { return s.ResolveError != "" })
	if !registeredAt(gs[0], gs[2])(s) || !strings.Contains(s.ResolveError, "no such host") {
		t.Errorf("status after a failed lookup: %+v", s)
	}
	a.waitLog(t, "the entries of this gateway keep their connections")
	// Dropped connections ask for lookups too; failures are logged once
	// per interval at most.
	before := a.countLogs("the entries of this gateway keep their connections")
	time.Sleep(300 * time.Millisecond)
	if n := a.countLogs("the entries of this gateway keep their connections") - before; n > 4 {
		t.Errorf("a failing lookup logged %d times in 3 intervals", n)
	}
}

// TestOneRegistrationPerInstance: two addresses that lead to one gateway
// instance keep one registration there, and the other address waits for
// the next lookup, then tries again without registering.
func TestOneRegistrationPerInstance(t *testing.T) {
	gs, _, opts, e := cluster(t, 3, "home", "")
	gs[2].Set(func(s *testgateway.Settings) { s.Instance = "gw-2" }) // the second gateway, at a second address
	a := startAgent(t, opts, e)
	testgateway.Receive(t, gs[0].Controls, "a control connection at the first gateway")
	var kept, other *testgateway.Gateway
	select {
	case <-gs[1].Controls:
		kept, other = gs[1], gs[2]
	case <-gs[2].Controls:
		kept, other = gs[2], gs[1]
	case <-time.After(10 * time.Second):
		t.Fatal("no registration on the instance gw-2")
	}
	a.waitLog(t, "reach the gateway instance gw-2")
	s := waitStatus(t, a.Agent, 0, "one registration per instance", func(s EntryStatus) bool {
		duplicate, registered := false, 0
		for _, g := range s.Gateways {
			if g.Address == other.Addr.String() {
				duplicate = g.State == StateDuplicate && g.Instance == "gw-2"
			} else if g.State == StateRegistered {
				registered++
			}
		}
		return duplicate && registered == 2
	})
	if s.State != StateRegistered || s.Registrations.Registered != 2 {
		t.Errorf("status: %+v", s)
	}
	// Lookups come every 100 ms: the other address tries again, and
	// leaves off before its password.
	a.waitLogs(t, "reach the gateway instance gw-2", 3)
	testgateway.Nothing(t, other.Controls, 300*time.Millisecond, "a second registration on the instance gw-2")
	if n := len(kept.Controls); n != 0 {
		t.Errorf("%d more registrations at %s", n, kept.Addr)
	}
}

// TestGatewayDown: when one gateway drops its connections or goes down,
// the registrations at the others keep serving, and the dropped one
// resumes.
func TestGatewayDown(t *testing.T) {
	gs, _, opts, e := cluster(t, 3, "home", localHTTP(t))
	a := startAgent(t, opts, e)
	var controls []*testgateway.Control
	for _, g := range gs {
		controls = append(controls, testgateway.Receive(t, g.Controls, "a control connection at "+g.Addr.String()))
	}
	waitStatus(t, a.Agent, 0, "three registrations", registeredAt(gs...))
	controls[0].Open(wire.KindMux)
	back := testgateway.Receive(t, gs[0].Backs, "a back connection at the first gateway")

	controls[1].Conn.Close()
	again := testgateway.Receive(t, gs[1].Controls, "the second gateway's registration again")
	if !again.Resumed {
		t.Error("the registration at the second gateway was not resumed")
	}
	gs[2].Stop()
	if code, _ := back.Request(t, "GET", "/still", ""); code != 200 {
		t.Errorf("request through the first gateway while the third is down: %d", code)
	}
	s := waitStatus(t, a.Agent, 0, "the third gateway down", func(s EntryStatus) bool {
		return len(s.Gateways) == 3 && s.Gateways[2].State != StateRegistered && s.Gateways[2].LastError != ""
	})
	if s.State != StateRegistered || s.Gateways[0].State != StateRegistered {
		t.Errorf("status with a gateway down: %+v", s)
	}
}

// TestProxiedGateways: through a proxy, the agent asks the proxy for each
// address of the gateway; when it cannot resolve the host, it connects by
// name through the proxy, and says so.
func TestProxiedGateways(t *testing.T) {
	gs, dns, opts, e := cluster(t, 2, "home", "")
	px := fakeProxy(t, "", "")
	e.Proxies = []balancebin.Proxy{{Address: px.addr}}
	a := startAgent(t, opts, e)
	got := []string{px.target(t), px.target(t)}
	slices.Sort(got)
	if want := []string{gs[0].Addr.String(), gs[1].Addr.String()}; !slices.Equal(got, want) {
		t.Errorf("CONNECT targets %v, want %v", got, want)
	}
	waitStatus(t, a.Agent, 0, "two registrations through the proxy", registeredAt(gs...))
	a.stop()

	dns.fail()
	byName := e.Gateway.String()
	px.aliases.Store(byName, gs[0].Addr.String())
	b := startAgent(t, opts, e)
	if got := px.target(t); got != byName {
		t.Errorf("CONNECT target %s, want the gateway's name %s", got, byName)
	}
	s := waitStatus(t, b.Agent, 0, "the registration by name", inState(StateRegistered))
	if !s.ByName || s.ResolveError == "" || len(s.Gateways) != 1 || s.Gateways[0].Address != byName {
		t.Errorf("status by name: %+v", s)
	}
	b.waitLog(t, "connecting by name through the proxy")

	dns.set(gs...)
	waitStatus(t, b.Agent, 0, "the registrations at each address", registeredAt(gs...))
	if s := b.Status().Entries[0]; s.ByName {
		t.Errorf("still by name: %+v", s)
	}
}

// TestSharedLookups: entries with the same gateway host share its
// lookups: one per interval, not one per entry.
func TestSharedLookups(t *testing.T) {
	gs, dns, opts, e := cluster(t, 1, "home", "")
	opts.ResolveInterval = time.Hour
	var entries []balancebin.BackEntry
	for _, name := range []string{"a", "b", "c", "d"} {
		x := e
		x.Name = name
		entries = append(entries, x)
	}
	a := startAgent(t, opts, entries...)
	for range entries {
		testgateway.Receive(t, gs[0].Attempts, "a control hello")
	}
	for i := range entries {
		waitStatus(t, a.Agent, i, "a refusal", func(s EntryStatus) bool { return s.Registrations.Refused > 0 })
	}
	if n := dns.lookups.Load(); n != 1 {
		t.Errorf("%d lookups for 4 entries of one gateway host, want 1", n)
	}
}

// TestSharedLookupOutlivesEntry: the lookups of a host go on for the
// entries that use it when the entry that started them leaves.
func TestSharedLookupOutlivesEntry(t *testing.T) {
	gs, dns, opts, e := cluster(t, 2, "home", "")
	dns.set(gs[0])
	first := e
	first.Name = "first"
	a := startAgent(t, opts, first, e)
	testgateway.Receive(t, gs[0].Controls, "the registration of home")
	a.Apply([]balancebin.BackEntry{e})
	a.waitLog(t, "entry removed")
	dns.set(gs[0], gs[1])
	testgateway.Receive(t, gs[1].Controls, "the registration of home at the address that joined")
}

// TestFileBudgetScale: 1000 entries at 3 gateways hold 9000 connections,
// which a limit of 20,000 open files leaves room for, sessions included.
func TestFileBudgetScale(t *testing.T) {
	f := newFileBudget(20000)
	for range 1000 * 3 * 3 { // a control and two multiplexed connections per entry and gateway
		f.hold()
	}
	sessions := 0
	for f.acquire() {
		sessions++
	}
	if sessions != 20000-1000-9000 {
		t.Errorf("%d sessions fit beside 9000 gateway connections in 20,000 open files, want %d", sessions, 20000-1000-9000)
	}
}

// TestAddresses: Addresses sorts and dedups, takes an IP as itself and
// says what failed.
func TestAddresses(t *testing.T) {
	lookup := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.2"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}, nil
	}
	got, err := Addresses(context.Background(), lookup, "gw.example")
	if want := "10.0.0.1 10.0.0.2 2001:db8::1"; err != nil || fmtAddrs(got) != want {
		t.Errorf("Addresses = %v, %v; want %s", got, err, want)
	}
	if got, err := Addresses(context.Background(), nil, "192.0.2.7"); err != nil || len(got) != 1 || got[0].String() != "192.0.2.7" {
		t.Errorf("Addresses of an IP = %v, %v", got, err)
	}
	fail := func(context.Context, string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: "gw.example", IsNotFound: true}
	}
	if _, err := Addresses(context.Background(), fail, "gw.example"); err == nil || err.Error() != "resolving gw.example: no such host" {
		t.Errorf("Addresses of an unknown host: %v", err)
	}
	broken := func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("server failure") }
	if _, err := Addresses(context.Background(), broken, "gw.example"); err == nil || !strings.Contains(err.Error(), "server failure") {
		t.Errorf("Addresses with a failing server: %v", err)
	}
}

// fmtAddrs lists addresses separated by spaces.
func fmtAddrs(addrs []netip.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}
