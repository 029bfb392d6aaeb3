package balancebin

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestFilterAllows(t *testing.T) {
	resolve := func(host string) ([]netip.Addr, error) {
		switch host {
		case "home.dyndns.net":
			return []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")}, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		f    Filter
		addr string
		want bool
	}{
		{Filter{}, "198.51.100.1", true},
		{Filter{Star: true}, "2001:db8::1", true},
		{Filter{FilterIP, "51.254.22.85", true}, "51.254.22.85", true},
		{Filter{FilterIP, "51.254.22.85", true}, "::ffff:51.254.22.85", true},
		{Filter{FilterIP, "51.254.22.85", true}, "51.254.22.86", false},
		{Filter{FilterPrefix, "51.254.*", true}, "51.254.1.2", true},
		{Filter{FilterPrefix, "51.254.*", true}, "::ffff:51.254.200.2", true},
		{Filter{FilterPrefix, "51.254.*", true}, "51.255.1.2", false},
		{Filter{FilterPrefix, "51.*", true}, "51.0.0.1", true},
		{Filter{FilterPrefix, "51.254.22.*", true}, "51.254.22.9", true},
		{Filter{FilterPrefix, "51.254.22.*", true}, "51.254.23.9", false},
		{Filter{FilterPrefix, "51.*", true}, "2001:db8::1", false},
		{Filter{FilterDNS, "home.dyndns.net", true}, "203.0.113.7", true},
		{Filter{FilterDNS, "home.dyndns.net", true}, "2001:db8::7", true},
		{Filter{FilterDNS, "home.dyndns.net", true}, "203.0.113.8", false},
	}
	for _, tt := range tests {
		got, err := tt.f.Allows(netip.MustParseAddr(tt.addr), resolve)
		if err != nil || got != tt.want {
			t.Errorf("%+v.Allows(%s) = %v, %v; want %v", tt.f, tt.addr, got, err, tt.want)
		}
	}
}

func TestFilterAllowsErrors(t *testing.T) {
	addr := netip.MustParseAddr("203.0.113.7")
	fail := func(string) ([]netip.Addr, error) { return nil, errors.New("lookup failed") }
	for _, f := range []Filter{
		{FilterDNS, "home.dyndns.net", true},
		{FilterIP, "not-an-ip", true},
		{FilterPrefix, "1.2.3.4.*", true},
		{FilterPrefix, "1.x.*", true},
		{FilterPrefix, "1.2", true},
		{FilterKind(9), "", true},
	} {
		if ok, err := f.Allows(addr, fail); ok || err == nil {
			t.Errorf("%+v.Allows = %v, %v; want an error", f, ok, err)
		}
	}
	if ok, err := (Filter{FilterDNS, "h", true}).Allows(addr, nil); ok || err == nil {
		t.Errorf("Allows without resolver = %v, %v; want an error", ok, err)
	}
}

func TestFilterKindString(t *testing.T) {
	for k, want := range map[FilterKind]string{
		FilterNone: "none", FilterIP: "ip", FilterPrefix: "prefix", FilterDNS: "dns", FilterKind(7): "FilterKind(7)",
	} {
		if got := k.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	for in, want := range map[string]Filter{
		"":             {Star: true},
		"*":            {Star: true},
		"1.2.3.4":      {Kind: FilterIP, Value: "1.2.3.4", Star: true},
		"51.254.*":     {Kind: FilterPrefix, Value: "51.254.*", Star: true},
		"home.example": {Kind: FilterDNS, Value: "home.example", Star: true},
	} {
		got, err := ParseFilter("allow", in)
		if err != nil || got != want {
			t.Errorf("ParseFilter(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1.2.3.*.4", "1.2.3", "a b", "1.2.3.4.5.*"} {
		if _, err := ParseFilter("allow", bad); err == nil || !strings.HasPrefix(err.Error(), "allow:1:") {
			t.Errorf("ParseFilter(%q) error %v, want one at allow:1:", bad, err)
		}
	}
}
