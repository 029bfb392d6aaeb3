package agent

import (
	"testing"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
)

func TestHostHeader(t *testing.T) {
	for _, tc := range []struct {
		tls  bool
		host string
		port uint16
		want string
	}{
		{false, "gw.example", 80, "gw.example"},
		{false, "gw.example", 443, "gw.example"}, // port 443 means TLS
		{true, "gw.example", 443, "gw.example"},
		{true, "gw.example", 8443, "gw.example:8443"},
		{false, "10.0.0.1", 8080, "10.0.0.1:8080"},
		{true, "::1", 443, "[::1]"},
		{false, "::1", 8080, "[::1]:8080"},
		{true, "gw.example", 80, "gw.example:80"},
	} {
		e := balancebin.BackEntry{TLS: tc.tls, Gateway: balancebin.HostPort{Host: tc.host, Port: tc.port}}
		if got := hostHeader(e); got != tc.want {
			t.Errorf("hostHeader(tls %v, %s:%d) = %q, want %q", tc.tls, tc.host, tc.port, got, tc.want)
		}
	}
}

func TestLocalAddress(t *testing.T) {
	entries, err := balancebin.ParseBack("backbalance.bin", []byte("/~~a=pw#gw:443 => 127.0.0.1:8080;\n"+
		"/~~b=pw#gw:443 RDPPORT 10.0.0.5:3390;\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := entries[0]
	if got, err := localAddress(e, wire.KindHTTP); err != nil || got != "127.0.0.1:8080" {
		t.Errorf("HTTP: %q, %v", got, err)
	}
	if got, err := localAddress(e, wire.KindRDP); err != nil || got != "127.0.0.1:3389" {
		t.Errorf("RDP by default: %q, %v", got, err)
	}
	if got, err := localAddress(entries[1], wire.KindRDP); err != nil || got != "10.0.0.5:3390" {
		t.Errorf("RDP named by RDPPORT: %q, %v", got, err)
	}
	if _, err := localAddress(e, 7); err == nil {
		t.Error("unknown kind accepted")
	}
}
