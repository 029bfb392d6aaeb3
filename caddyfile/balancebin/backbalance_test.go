package balancebin

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseBackValid(t *testing.T) {
	local := HostPort{"127.0.0.1", 80}
	rdp := HostPort{"127.0.0.1", 3389}
	gw := HostPort{"gw.example", 443}
	tests := []struct {
		in   string
		want []BackEntry
	}{
		{`/~~home=pw#gw.example.com:443;`, []BackEntry{
			{Name: "home", Password: "pw", Gateway: HostPort{"gw.example.com", 443}, Local: local, RDP: rdp},
		}},
		{`SSL /~~home=pw#gw.example.com:8443 => 127.0.0.1:8080;`, []BackEntry{
			{TLS: true, Name: "home", Password: "pw", Gateway: HostPort{"gw.example.com", 8443},
				Local: HostPort{"127.0.0.1", 8080}, LocalSet: true, RDP: rdp},
		}},
		{`/~~srv1=pw#gw.example:443 -> \myuser1:mypass@192.168.10.11:808;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthNTLM, User: "myuser1", Password: "mypass", Address: HostPort{"192.168.10.11", 808}},
			}},
		}},
		{`/~~srv1=pw#gw.example:443 -> mydomain\myuser1:mypass@192.168.10.11:808;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthNTLM, Domain: "mydomain", User: "myuser1", Password: "mypass", Address: HostPort{"192.168.10.11", 808}},
			}},
		}},
		{`/~~srv1=pw#gw.example:443 -> myuser2:mypass@192.168.12.12:808;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthBasic, User: "myuser2", Password: "mypass", Address: HostPort{"192.168.12.12", 808}},
			}},
		}},
		{`/~~srv1=pw#gw.example:443 -> 192.168.10.11:808;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Address: HostPort{"192.168.10.11", 808}},
			}},
		}},
		{`/~~srv1=pw#gw.example:443 -> \u1:p1@10.0.0.1:808 -> u2:p2@10.0.0.2:808 => 127.0.0.1:8080;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: HostPort{"127.0.0.1", 8080}, LocalSet: true, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthNTLM, User: "u1", Password: "p1", Address: HostPort{"10.0.0.1", 808}},
				{Auth: ProxyAuthBasic, User: "u2", Password: "p2", Address: HostPort{"10.0.0.2", 808}},
			}},
		}},
		// The password ends at the last "#" before the gateway.
		{`/~~a=p#w#gw.example:443;`, []BackEntry{
			{Name: "a", Password: "p#w", Gateway: gw, Local: local, RDP: rdp},
		}},
		{`/~~a=p => q#gw.example:443 => [::1]:81;`, []BackEntry{
			{Name: "a", Password: "p => q", Gateway: gw, Local: HostPort{"::1", 81}, LocalSet: true, RDP: rdp},
		}},
		// The password may hold the separators of the suffixes.
		{`/~~a=p => q#gw.example:443;`, []BackEntry{
			{Name: "a", Password: "p => q", Gateway: gw, Local: local, RDP: rdp},
		}},
		{`/~~a=p RDPPORT q#gw.example:443;`, []BackEntry{
			{Name: "a", Password: "p RDPPORT q", Gateway: gw, Local: local, RDP: rdp},
		}},
		{`/~~a=x#y#gw.example:443 -> u:p#q@p:1;`, []BackEntry{
			{Name: "a", Password: "x#y", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthBasic, User: "u", Password: "p#q", Address: HostPort{"p", 1}},
			}},
		}},
		// Proxy passwords may hold ":", "@", "#" and "\".
		{`/~~a=pw#gw.example:443 -> u:p:a@b#c@proxy:8080 -> d\u:p\q@[::2]:3128;`, []BackEntry{
			{Name: "a", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthBasic, User: "u", Password: "p:a@b#c", Address: HostPort{"proxy", 8080}},
				{Auth: ProxyAuthNTLM, Domain: "d", User: "u", Password: `p\q`, Address: HostPort{"::2", 3128}},
			}},
		}},
		{"SSL\t/~~a=pw#gw.example:443 ;  /~~b=pw#gw.example:443 => 127.0.0.1:80\t;", []BackEntry{
			{TLS: true, Name: "a", Password: "pw", Gateway: gw, Local: local, RDP: rdp},
			{Name: "b", Password: "pw", Gateway: gw, Local: local, LocalSet: true, RDP: rdp},
		}},
		// The RDP service comes last.
		{`/~~srv1=pw#gw.example:443 RDPPORT 127.0.0.1:3390;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: HostPort{"127.0.0.1", 3390}, RDPSet: true},
		}},
		{`/~~srv1=pw#gw.example:443 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3389;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: HostPort{"127.0.0.1", 8080}, LocalSet: true,
				RDP: HostPort{"10.0.0.5", 3389}, RDPSet: true},
		}},
		{`/~~srv1=pw#gw.example:443 -> u:p@10.0.0.1:808 => 127.0.0.1:8080 RDPPORT 127.0.0.1:3389;`, []BackEntry{
			{Name: "srv1", Password: "pw", Gateway: gw, Local: HostPort{"127.0.0.1", 8080}, LocalSet: true,
				RDP: rdp, RDPSet: true, Proxies: []Proxy{
					{Auth: ProxyAuthBasic, User: "u", Password: "p", Address: HostPort{"10.0.0.1", 808}},
				}},
		}},
		{"SSL /~~srv1=pw#gw.example:443 -> 10.0.0.1:808  RDPPORT [::1]:3390\t;", []BackEntry{
			{TLS: true, Name: "srv1", Password: "pw", Gateway: gw, Local: local, RDP: HostPort{"::1", 3390}, RDPSet: true,
				Proxies: []Proxy{{Address: HostPort{"10.0.0.1", 808}}}},
		}},
		// A host may be called RDPPORT, and the passwords may hold
		// " RDPPORT " when the entry names its RDP service: it follows the
		// last one.
		{`/~~a=pw#gw.example:443 RDPPORT RDPPORT:3389;`, []BackEntry{
			{Name: "a", Password: "pw", Gateway: gw, Local: local, RDP: HostPort{"RDPPORT", 3389}, RDPSet: true},
		}},
		{`/~~a=p RDPPORT q#gw.example:443 -> u:x RDPPORT y@p:1 => l:1 RDPPORT r:2;`, []BackEntry{
			{Name: "a", Password: "p RDPPORT q", Gateway: gw, Local: HostPort{"l", 1}, LocalSet: true,
				RDP: HostPort{"r", 2}, RDPSet: true, Proxies: []Proxy{
					{Auth: ProxyAuthBasic, User: "u", Password: "x RDPPORT y", Address: HostPort{"p", 1}},
				}},
		}},
		{`/~~a=pw#gw.example:443 -> RDPPORT:1 => RDPPORT:2;`, []BackEntry{
			{Name: "a", Password: "pw", Gateway: gw, Local: HostPort{"RDPPORT", 2}, LocalSet: true,
				RDP: rdp, Proxies: []Proxy{{Address: HostPort{"RDPPORT", 1}}}},
		}},
		{`/~~a=pw#gw.example:443 -> u:@p:1;`, []BackEntry{
			{Name: "a", Password: "pw", Gateway: gw, Local: local, RDP: rdp, Proxies: []Proxy{
				{Auth: ProxyAuthBasic, User: "u", Address: HostPort{"p", 1}},
			}},
		}},
	}
	for _, tt := range tests {
		got, err := ParseBack("backbalance.bin", []byte(tt.in))
		if err != nil {
			t.Errorf("ParseBack(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(backWithoutPos(got), tt.want) {
			t.Errorf("ParseBack(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
		checkBackRoundTrip(t, []byte(tt.in), got)
	}
}

func TestParseBackErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SSL_STRICT /~~a=pw#gw:443;`, `1:1: found "SSL_STRICT", expected "SSL"`},
		{`SSL/~~a=pw#gw:443;`, `1:4: found "/", expected " "`},
		{`~~a=pw#gw:443;`, `1:1: found "~~a=***", expected "/~~"`},
		{`/~~a pw#gw:443;`, `1:5: found " ", expected "=" or a name character (letter, digit, "-", "_" or ".")`},
		{`/~~a=pwgw:443;`, `1:14: found ";", expected "#" followed by the gateway address`},
		{`/~~a=#gw:443;`, `1:6: found "#", expected a password before "#"`},
		{`/~~a=pw#gw;`, `1:11: found ";", expected ":"`},
		{`/~~a=pw#gw:99999;`, `1:12: found text not quoted in case it is a password, expected a port number (1-65535)`},
		{`/~~a=pw#gw:443`, `1:15: found end of file, expected ";"`},
		{"/~~a=pw#gw:443\n/~~b=pw#gw:443;", `1:15: found end of line, expected ";"`},
		{`/~~a=pw#gw:443 x;`, `1:16: found "x", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 -> ;`, `1:16: found "->", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 -> x:1 -> ;`, `1:23: found "->", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 ->  x:1;`, `1:19: found " ", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{`/~~a=pw#gw:443 ->  -> x:1;`, `1:19: found " ", expected a proxy address`},
		{`/~~a=pw#gw:443 -> x:1 ->  -> y:1;`, `1:26: found " ", expected a proxy address`},
		{`/~~a=p -> q#gw:443;`, `1:7: found " ", expected "#" followed by the gateway address`},
		{`/~~a=pw -> u:p#q@p:1;`, `1:8: found " ", expected "#" followed by the gateway address`},
		{`/~~a=pw#gw:443 -> 192.168.10.11;`, `1:32: found ";", expected ":"`},
		{`/~~a=pw#gw:443 -> myuser@1.2.3.4:1;`, `1:25: found "@", expected ":" between the proxy user and password`},
		{`/~~a=pw#gw:443 -> dom\:p@1.2.3.4:1;`, `1:23: found ":", expected a proxy user name`},
		{`/~~a=pw#gw:443 -> :p@1.2.3.4:1;`, `1:19: found ":", expected a proxy user name`},
		{`/~~a=pw#gw:443 -> u:p@;`, `1:23: found ";", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{`/~~a=pw#gw:443 -> 1.2.3.4:8o8;`, `1:28: found "o", expected a port number (1-65535)`},
		{`/~~a=pw#gw:443 -> 1.2.3.4:88 x;`, `1:30: found "x", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 => 127.0.0.1;`, `1:28: found ";", expected ":"`},
		{`/~~a=pw#gw:443 => ;`, `1:16: found "=>", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 => 127.0.0.1:80 x;`, `1:32: found "x", expected " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 => 127.0.0.1:80 -> p:1;`, `1:32: found "->", expected " RDPPORT " or ";"`},
		// The RDP service.
		{`/~~a=pw#gw:443 RDPPORT;`, `1:23: found ";", expected the RDP service (host:port) after "RDPPORT"`},
		{`/~~a=pw#gw:443 => 127.0.0.1:80 RDPPORT  ;`, `1:41: found ";", expected the RDP service (host:port) after "RDPPORT"`},
		{"/~~a=pw#gw:443 RDPPORT\n/~~b=pw#gw:443;", `1:23: found end of line, expected the RDP service (host:port) after "RDPPORT"`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1;`, `1:33: found ";", expected ":"`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1:99999;`, `1:34: found text not quoted in case it is a password, expected a port number (1-65535)`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1:33x9;`, `1:36: found "x", expected a port number (1-65535)`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1:0;`, `1:34: found "0", expected a port number (1-65535)`},
		{`/~~a=pw#gw:443 RDPPORT  127.0.0.1:3389;`, `1:24: found " ", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1:3389 x;`, `1:39: found "x", expected ";"`},
		{`/~~a=pw#gw:443 RDPPORT 127.0.0.1:3389 => 127.0.0.1:80;`, `1:39: found "=>", expected ";"`},
		{`/~~a=pw#gw:443 RDPPORT 1.2.3.4:1 RDPPORT;`, `1:41: found ";", expected the RDP service (host:port) after "RDPPORT"`},
		{`/~~a=pw#gw:443 RDPPORT 256.0.0.1:3389;`, `1:24: found text not quoted in case it is a password, expected a number from 0 to 255`},
		{"/~~a=pw#gw:443 RDPPORT\t127.0.0.1:3389;", `1:16: found "RDPPORT", expected " -> ", " => ", " RDPPORT " or ";"`},
		{`/~~a=pw#gw:443 => 127.0.0.1:80 RDPPORT x;`, `1:41: found ";", expected ":"`},
		{`/~~a=pw#gw:443 -> p:1 RDPPORT x:1 => 127.0.0.1:80;`, `1:35: found "=>", expected ";"`},
		{`/~~a=pw#gw:443 -> u:p#x@p:1 -> q#r:1;`, `1:33: found "#", expected ":"`},
		// Errors after a password that holds the separators never show it.
		{`/~~a=x RDPPORT secretpw:1 topsecret#gw:443 RDPPORT r;`, `1:53: found ";", expected ":"`},
		{`/~~a=x => secret#gw:443 => l;`, `1:29: found ";", expected ":"`},
	}
	for _, tt := range tests {
		_, err := ParseBack("backbalance.bin", []byte(tt.in))
		if err == nil {
			t.Errorf("ParseBack(%q) succeeded, want %s", tt.in, tt.want)
			continue
		}
		if got, want := err.Error(), "backbalance.bin:"+tt.want; got != want {
			t.Errorf("ParseBack(%q)\n got %s\nwant %s", tt.in, got, want)
		}
		var perr *Error
		if !errors.As(err, &perr) {
			t.Errorf("ParseBack(%q) returned %T, want *Error", tt.in, err)
		}
	}
}

func TestParseBackLayout(t *testing.T) {
	lf := "# subserver\n\nSSL /~~srv1=pw#gw.example:8443;\n// next\n  /~~srv2=pw#gw.example:443; /~~srv3=pw#gw.example:80;\n"
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	for _, in := range []string{lf, crlf, "\uFEFF" + lf, "\uFEFF" + crlf} {
		got, err := ParseBack("backbalance.bin", []byte(in))
		if err != nil {
			t.Fatalf("ParseBack(%q): %v", in, err)
		}
		var pos []Position
		var tls []bool
		for _, e := range got {
			pos = append(pos, e.Pos)
			tls = append(tls, e.UseTLS())
		}
		wantPos := []Position{{"backbalance.bin", 3, 1}, {"backbalance.bin", 5, 3}, {"backbalance.bin", 5, 30}}
		if !reflect.DeepEqual(pos, wantPos) {
			t.Errorf("ParseBack(%q) positions %v, want %v", in, pos, wantPos)
		}
		if want := []bool{true, true, false}; !reflect.DeepEqual(tls, want) {
			t.Errorf("ParseBack(%q) UseTLS %v, want %v", in, tls, want)
		}
	}
}

func TestBackEntryKey(t *testing.T) {
	e := BackEntry{Name: "Srv-1.A"}
	if got := e.Key(); got != "srv-1.a" {
		t.Errorf("Key() = %q", got)
	}
}

func TestProxyAuthString(t *testing.T) {
	for a, want := range map[ProxyAuth]string{ProxyAuthNone: "none", ProxyAuthBasic: "basic", ProxyAuthNTLM: "ntlm"} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(a), got, want)
		}
	}
}
