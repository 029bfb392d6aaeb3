package agent

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

func backEntry(line int, name, password, gateway string) balancebin.BackEntry {
	return balancebin.BackEntry{
		Pos:      balancebin.Position{File: "backbalance.bin", Line: line, Column: 1},
		Name:     name,
		Password: password,
		Gateway:  balancebin.HostPort{Host: gateway, Port: 443},
		Local:    balancebin.HostPort{Host: "127.0.0.1", Port: 80},
	}
}

func TestDiff(t *testing.T) {
	running := map[string]balancebin.BackEntry{
		"same":    backEntry(1, "same", "pw", "gw"),
		"moved":   backEntry(2, "moved", "pw", "gw"),
		"gone":    backEntry(3, "gone", "pw", "gw"),
		"newpw":   backEntry(4, "newpw", "pw", "gw"),
		"newgw":   backEntry(5, "newgw", "pw", "gw"),
		"case":    backEntry(6, "case", "pw", "gw"),
		"proxied": backEntry(7, "proxied", "pw", "gw"),
		"tls":     backEntry(8, "tls", "pw", "gw"),
		"local":   backEntry(9, "local", "pw", "gw"),
		"rdp":     backEntry(11, "rdp", "pw", "gw"),
	}
	proxied := backEntry(7, "proxied", "pw", "gw")
	proxied.Proxies = []balancebin.Proxy{{Address: balancebin.HostPort{Host: "p", Port: 1}}}
	tlsOn := backEntry(8, "tls", "pw", "gw")
	tlsOn.TLS = true
	local := backEntry(9, "local", "pw", "gw")
	local.Local.Port = 8080
	rdp := backEntry(11, "rdp", "pw", "gw")
	rdp.RDP, rdp.RDPSet = balancebin.HostPort{Host: "10.0.0.5", Port: 3389}, true
	want := []balancebin.BackEntry{
		backEntry(1, "same", "pw", "gw"),
		backEntry(20, "moved", "pw", "gw"),
		backEntry(4, "newpw", "other", "gw"),
		backEntry(5, "newgw", "pw", "gw2"),
		backEntry(6, "CASE", "pw", "gw"),
		proxied, tlsOn, local, rdp,
		backEntry(10, "added", "pw", "gw"),
	}
	p := diff(running, want)
	names := func(es []balancebin.BackEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Key())
		}
		return out
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("start", names(p.start), []string{"added"})
	check("restart", names(p.restart), []string{"newpw", "newgw", "case", "proxied", "tls", "local", "rdp"})
	check("stop", p.stop, []string{"gone"})
	check("keep", p.keep, []string{"same", "moved"})

	if p := diff(nil, want[:1]); len(p.start) != 1 || len(p.stop)+len(p.restart)+len(p.keep) != 0 {
		t.Errorf("from nothing: %+v", p)
	}
	if p := diff(running, nil); len(p.stop) != len(running) {
		t.Errorf("to nothing stops %d of %d", len(p.stop), len(running))
	}
}

func TestCheckEntries(t *testing.T) {
	ok := backEntry(1, "home", "pw", "gw")
	proxied := backEntry(2, "office", "pw", "gw")
	proxied.Proxies = []balancebin.Proxy{{Address: balancebin.HostPort{Host: "p", Port: 1}}}
	dup := backEntry(3, "HOME", "pw", "gw")
	errs := CheckEntries([]balancebin.BackEntry{ok, proxied, dup})
	if errs[0] != nil {
		t.Errorf("good entry refused: %v", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("entry with proxies refused: %v", errs[1])
	}
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "backbalance.bin:3:1") ||
		!strings.Contains(errs[2].Error(), "already used by the entry at backbalance.bin:1:1") {
		t.Errorf("duplicate name: %v", errs[2])
	}
	if err := CheckEntry(proxied); err != nil {
		t.Errorf("CheckEntry: %v", err)
	}
}
