package gateway

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/modules/broker"
)

func TestRDPSpecs(t *testing.T) {
	h := &Handler{
		Servers: map[string]json.RawMessage{"web": json.RawMessage(`{"upstreams":[{"dial":"10.0.0.1:80"}]}`)},
		RDP:     map[string][]string{"WEB": {"10.0.0.1:3389"}, "desk": {"10.0.0.9:3389", "[fd00::9]:3390"}},
	}
	specs, err := h.routeSpecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := specs["web"]; got.proxy == nil || !slices.Equal(got.rdp, []balancebin.HostPort{{Host: "10.0.0.1", Port: 3389}}) {
		t.Errorf("web: proxy %v, rdp %v", got.proxy, got.rdp)
	}
	if got := specs["desk"]; got.proxy != nil || len(got.rdp) != 2 || got.rdp[1].String() != "[fd00::9]:3390" {
		t.Errorf("desk: proxy %v, rdp %v", got.proxy, got.rdp)
	}

	file := []balancebin.Entry{{Name: "Desk", Target: balancebin.HostPort{Host: "10.0.0.2", Port: 80}}}
	h.BalanceFiles = []BalanceFile{{Path: "balance.bin"}}
	if _, err := h.routeSpecs([][]balancebin.Entry{file}); err == nil || !strings.Contains(err.Error(), `"Desk" is defined twice: rdp desk and`) {
		t.Errorf("a name given rdp targets and a file entry: %v", err)
	}

	for addr, want := range map[string]string{
		"10.0.0.1":      "missing port",
		"10.0.0.1:0":    "a port from 1 to 65535",
		":3389":         "a port from 1 to 65535",
		"10.0.0.1:rdp":  "a port from 1 to 65535",
		"10.0.0.1:3389": "",
	} {
		_, err := parseHostPort(addr)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("parseHostPort(%q) = %v, want %q", addr, err, want)
		}
	}
}

// TestRDPPlan: RDPPORT targets first, then the agent, then the web
// servers' host and port, as TSplus does.
func TestRDPPlan(t *testing.T) {
	web := []string{"10.0.0.1:443", "10.0.0.2:443"}
	rdp := []balancebin.HostPort{{Host: "10.0.0.1", Port: 3389}}
	back := &broker.Entry{Name: "home"}
	cases := []struct {
		rt      *route
		targets []string
		agent   bool
	}{
		{&route{name: "a", upstreamDials: web, rdpTargets: rdp}, []string{"10.0.0.1:3389"}, false},
		{&route{name: "b", upstreamDials: web, back: back, rdpTargets: rdp}, []string{"10.0.0.1:3389"}, false},
		{&route{name: "c", upstreamDials: web, back: back}, nil, true},
		{&route{name: "d", upstreamDials: web}, []string{"10.0.0.1:443", "10.0.0.2:443"}, false},
		{&route{name: "e"}, nil, false},
	}
	for _, c := range cases {
		p := c.rt.rdpPlan(nil)
		if !slices.Equal(p.targets, c.targets) || p.agent != c.agent || p.name != c.rt.name {
			t.Errorf("%s: %+v, want targets %v, agent %v", c.rt.name, p, c.targets, c.agent)
		}
	}
}

// TestStickyOrder: a client address always starts at the same target and
// fails over through all the others; different clients spread out.
func TestStickyOrder(t *testing.T) {
	targets := []string{"a:1", "b:1", "c:1"}
	starts := make(map[string]bool)
	for i := range 50 {
		client := net.IPv4(10, 0, byte(i), 1).String()
		order := stickyOrder(targets, client)
		again := stickyOrder(targets, client)
		if !slices.Equal(order, again) {
			t.Fatalf("%s: %v, then %v", client, order, again)
		}
		sorted := slices.Sorted(slices.Values(order))
		if !slices.Equal(sorted, targets) {
			t.Fatalf("%s: %v is not every target once", client, order)
		}
		starts[order[0]] = true
	}
	if len(starts) != len(targets) {
		t.Errorf("50 clients started at only %v", starts)
	}
	if got := stickyOrder(targets[:1], "10.0.0.1"); !slices.Equal(got, targets[:1]) {
		t.Errorf("one target: %v", got)
	}
}
