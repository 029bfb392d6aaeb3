package balancebin

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in   string
		want []Entry
	}{
		{"/~~srv1=192.168.1.10:80;", []Entry{
			{Name: "srv1", Target: HostPort{"192.168.1.10", 80}},
		}},
		{"SSL /~~srv2=10.0.0.5:443;", []Entry{
			{TLS: KeywordSSL, Name: "srv2", Target: HostPort{"10.0.0.5", 443}},
		}},
		{"SSL_STRICT /~~portal=portal.example.com:443;", []Entry{
			{TLS: KeywordSSLStrict, Name: "portal", Target: HostPort{"portal.example.com", 443}},
		}},
		{"SSL_JVM_TM /~~a=10.0.0.6:8443;  SSL_JVM_TM_STRICT /~~b=b.example:443;", []Entry{
			{TLS: KeywordSSLJVMTM, Name: "a", Target: HostPort{"10.0.0.6", 8443}},
			{TLS: KeywordSSLJVMTMStrict, Name: "b", Target: HostPort{"b.example", 443}},
		}},
		{"/~~srv1=192.168.55.77:3389 RDPPORT;", []Entry{
			{Name: "srv1", Target: HostPort{"192.168.55.77", 3389}, RDP: true},
		}},
		{"/~~v6=[::1]:8080;", []Entry{
			{Name: "v6", Target: HostPort{"::1", 8080}},
		}},
		{"/~~home=secret#:*;", []Entry{
			{Name: "home", Back: true, Password: "secret", Filter: Filter{Star: true}},
		}},
		{"/~~home2=secret#:1;", []Entry{
			{Name: "home2", Back: true, Password: "secret", BackPort: 1},
		}},
		{"/~~office=pw#:*51.254.22.85;", []Entry{
			{Name: "office", Back: true, Password: "pw", Filter: Filter{FilterIP, "51.254.22.85", true}},
		}},
		{"/~~branch=pw#:*51.254.*;", []Entry{
			{Name: "branch", Back: true, Password: "pw", Filter: Filter{FilterPrefix, "51.254.*", true}},
		}},
		{"/~~laptop=pw#:*home.dyndns.net;", []Entry{
			{Name: "laptop", Back: true, Password: "pw", Filter: Filter{FilterDNS, "home.dyndns.net", true}},
		}},
		{"SSL /~~secure=pw#:*;", []Entry{
			{TLS: KeywordSSL, Name: "secure", Back: true, Password: "pw", Filter: Filter{Star: true}},
		}},
		// The password runs to the last "#" and may hold blanks and ":".
		{"/~~a=p#s:s w#:*;", []Entry{
			{Name: "a", Back: true, Password: "p#s:s w", Filter: Filter{Star: true}},
		}},
		{"/~~a= a b #:1;", []Entry{
			{Name: "a", Back: true, Password: " a b ", BackPort: 1},
		}},
		{"/~~Srv_1.a-b=HOST-1.example:080;", []Entry{
			{Name: "Srv_1.a-b", Target: HostPort{"HOST-1.example", 80}},
		}},
		{"SSL \t /~~a=1.2.3.4:80 \t RDPPORT \t;", []Entry{
			{TLS: KeywordSSL, Name: "a", Target: HostPort{"1.2.3.4", 80}, RDP: true},
		}},
		{"/~~a=pw#:*8.*;/~~a=pw#:*8.8.*;/~~a=pw#:*0.0.0.0;", []Entry{
			{Name: "a", Back: true, Password: "pw", Filter: Filter{FilterPrefix, "8.*", true}},
			{Name: "a", Back: true, Password: "pw", Filter: Filter{FilterPrefix, "8.8.*", true}},
			{Name: "a", Back: true, Password: "pw", Filter: Filter{FilterIP, "0.0.0.0", true}},
		}},
		{"/~~a=[::ffff:10.0.0.1]:65535;/~~" + strings.Repeat("n", 64) + "=h:1;", []Entry{
			{Name: "a", Target: HostPort{"::ffff:10.0.0.1", 65535}},
			{Name: strings.Repeat("n", 64), Target: HostPort{"h", 1}},
		}},
	}
	for _, tt := range tests {
		got, err := Parse("balance.bin", []byte(tt.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(withoutPos(got), tt.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
		checkRoundTrip(t, []byte(tt.in), got)
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct{ in, want string }{
		// What starts an entry.
		{"srv1=192.168.1.10:80;", `1:1: found text not quoted in case it is a password, expected "/~~"`},
		{"~~srv1=1.2.3.4:80;", `1:1: found "~~srv1=***", expected "/~~"`},
		{"SSLX /~~a=1.2.3.4:80;", `1:1: found "SSLX", expected a TLS keyword (SSL, SSL_STRICT, SSL_JVM_TM or SSL_JVM_TM_STRICT)`},
		{"ssl /~~a=1.2.3.4:80;", `1:1: found "ssl", expected a TLS keyword (SSL, SSL_STRICT, SSL_JVM_TM or SSL_JVM_TM_STRICT)`},
		{"SSL/~~a=1.2.3.4:80;", `1:4: found "/", expected " "`},
		{"SSL  a=1.2.3.4:80;", `1:6: found text not quoted in case it is a password, expected "/~~"`},
		{";", `1:1: found ";", expected "/~~"`},
		{"/~~a=1.2.3.4:80; // note", `1:18: found "//", expected "/~~" (a comment must start its line)`},
		{"/~~a=1.2.3.4:80;# note", `1:17: found "#", expected "/~~" (a comment must start its line)`},
		// The name.
		{"/~~=1.2.3.4:80;", `1:4: found "=", expected a name (letters, digits, "-", "_" or ".")`},
		{"/~~é=1.2.3.4:80;", `1:4: found "é", expected a name (letters, digits, "-", "_" or ".")`},
		{"/~~sr v=1.2.3.4:80;", `1:6: found " ", expected "=" or a name character (letter, digit, "-", "_" or ".")`},
		{"/~~sr!v=1.2.3.4:80;", `1:6: found "!", expected "=" or a name character (letter, digit, "-", "_" or ".")`},
		{"/~~srv1;", `1:8: found ";", expected "="`},
		{"/~~" + long + "=1.2.3.4:80;", `1:68: found "a", expected "=" (a name has at most 64 characters)`},
		// The end of the entry.
		{"/~~a=1.2.3.4:80", `1:16: found end of file, expected ";"`},
		{"/~~a=1.2.3.4:80\r\n\n", `1:16: found end of file, expected ";"`},
		{"/~~a=1.2.3.4:80\n/~~b=1.2.3.4:80;", `1:16: found end of line, expected ";"`},
		{"/~~a=1.2.3.4:80\r\n/~~b=1.2.3.4:80;", `1:16: found end of line, expected ";"`},
		{"/~~a=1.2.3.4:80\n# more\n", `1:16: found end of line, expected ";"`},
		{"/~~a", `1:5: found end of file, expected "="`},
		{"/~~a=1.2.3.4:80 RDP;", `1:17: found text not quoted in case it is a password, expected "RDPPORT" or ";"`},
		{"/~~a=1.2.3.4:80 RDPPORT x;", `1:25: found "x", expected ";"`},
		{"/~~a=1.2.3.4:80RDPPORT;", `1:16: found "R", expected a port number (1-65535)`},
		// Hosts and ports.
		{"/~~a=host:x;", `1:11: found "x", expected a port number (1-65535)`},
		{"/~~a=host:8x0;", `1:12: found "x", expected a port number (1-65535)`},
		{"/~~a=host:0;", `1:11: found "0", expected a port number (1-65535)`},
		{"/~~a=host:65536;", `1:11: found text not quoted in case it is a password, expected a port number (1-65535)`},
		{"/~~a=host:99999999999999999999;", `1:11: found text not quoted in case it is a password, expected a port number (1-65535)`},
		{"/~~a=host:;", `1:11: found ";", expected a port number (1-65535)`},
		{"/~~a=host: ;", `1:11: found " ", expected a port number (1-65535)`},
		{"/~~a=host;", `1:10: found ";", expected ":"`},
		{"/~~a=ho/st:80;", `1:8: found "/", expected ":"`},
		{"/~~a=:80;", `1:6: found ":", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{"/~~a=::1:80;", `1:6: found ":", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{"/~~a= 1.2.3.4:80;", `1:6: found " ", expected a host (DNS name, IPv4 address or [IPv6 address])`},
		{"/~~a=1.2.3:80;", `1:6: found text not quoted in case it is a password, expected an IPv4 address (four numbers from 0 to 255)`},
		{"/~~a=1.2.3.4.5:80;", `1:6: found text not quoted in case it is a password, expected an IPv4 address (four numbers from 0 to 255)`},
		{"/~~a=1.2.3.256:80;", `1:12: found text not quoted in case it is a password, expected a number from 0 to 255`},
		{"/~~a=1.2.3.1234:80;", `1:12: found text not quoted in case it is a password, expected a number from 0 to 255`},
		{"/~~a=" + strings.Repeat("abcdefghi.", 26) + "com:80;", `1:6: found text not quoted in case it is a password, expected a DNS name of at most 253 characters`},
		{"/~~a=01.2.3.4:80;", `1:6: found text not quoted in case it is a password, expected a number from 0 to 255 without leading zeros`},
		{"/~~a=1..3.4:80;", `1:8: found ".", expected a number from 0 to 255`},
		{"/~~a=[::1:80;", `1:13: found ";", expected "]"`},
		{"/~~a=[1.2.3.4]:80;", `1:7: found text not quoted in case it is a password, expected an IPv6 address`},
		{"/~~a=[fe80::1%eth0]:80;", `1:7: found text not quoted in case it is a password, expected an IPv6 address`},
		{"/~~a=[]:80;", `1:7: found "]", expected an IPv6 address`},
		{"/~~a=[::1]8080;", `1:11: found "8", expected ":"`},
		{"/~~a=ex..com:80;", `1:9: found ".", expected a letter or digit`},
		{"/~~a=example.:80;", `1:14: found ":", expected a letter or digit`},
		{"/~~a=-ex.com:80;", `1:6: found "-", expected a letter or digit`},
		{"/~~a=ex-.com:80;", `1:8: found "-", expected a letter or digit`},
		{"/~~a=" + strings.Repeat("x", 64) + ".com:80;", `1:69: found "x", expected "." (a DNS label has at most 63 characters)`},
		// Back entries.
		{"/~~a=#:*;", `1:6: found "#", expected a password before "#"`},
		{"/~~a=pw#*;", `1:9: found "*", expected ":"`},
		{"/~~a=pw#;", `1:9: found ";", expected ":"`},
		{"/~~a=pw#:;", `1:10: found ";", expected a port number (1-65535)`},
		{"/~~a=pw#:x;", `1:10: found "x", expected a port number (1-65535)`},
		{"/~~a=pw#:1 RDPPORT;", `1:12: found "RDPPORT", expected ";" (RDPPORT is not allowed on a back entry)`},
		{"/~~a=pw#:* RDPPORT;", `1:12: found "RDPPORT", expected ";" (RDPPORT is not allowed on a back entry)`},
		{"/~~a=pw#:*host RDPPORT;", `1:16: found "RDPPORT", expected ";" (RDPPORT is not allowed on a back entry)`},
		{"/~~a=pw#:*host x;", `1:16: found "x", expected ";"`},
		{"/~~a=pw#:**;", `1:11: found "*", expected an IPv4 address, an IPv4 prefix such as 51.254.* or a DNS name`},
		{"/~~a=pw#:*51.254.*.1;", `1:18: found "*", expected an IPv4 address, an IPv4 prefix such as 51.254.* or a DNS name`},
		{"/~~a=pw#:*51.254.22.85.*;", `1:11: found text not quoted in case it is a password, expected an IPv4 prefix of one to three numbers followed by ".*"`},
		{"/~~a=pw#:*51.254.300.*;", `1:18: found text not quoted in case it is a password, expected a number from 0 to 255`},
		{"/~~a=pw#:*.*;", `1:11: found ".", expected a number from 0 to 255`},
		{"/~~a=pw#:*1.2.3;", `1:11: found text not quoted in case it is a password, expected an IPv4 address (four numbers from 0 to 255)`},
		{"/~~a=pw#:*home..net;", `1:16: found ".", expected a letter or digit`},
		{"/~~a=pw#:**.example.com;", `1:11: found "*", expected a letter, digit, "-", "_" or "."`},
		{"/~~a=pw#:*home.net:80;", `1:19: found ":", expected a letter, digit, "-", "_" or "."`},
	}
	for _, tt := range tests {
		_, err := Parse("balance.bin", []byte(tt.in))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %s", tt.in, tt.want)
			continue
		}
		if got, want := err.Error(), "balance.bin:"+tt.want; got != want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", tt.in, got, want)
		}
		var perr *Error
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q) returned %T, want *Error", tt.in, err)
		}
	}
}

func TestParseErrorPositions(t *testing.T) {
	tests := []struct{ in, want string }{
		{"\n\n  /~~a=1.2.3.4:80;\n\t/~~b=1.2.3.4:x;", "4:15"},
		{"\uFEFF/~~a=host:x;", "1:11"},
		{"/~~a=pä#:x;", "1:10"},
		{"/~~a=1.2.3.4:80;\r\n# comment\r\n// comment\r\n   /~~b=1.2.3.4:80; /~~c=h:0;", "4:28"},
		{"/~~a=1.2.3.4:80;\n\n\n\n", ""},
	}
	for _, tt := range tests {
		_, err := Parse("f", []byte(tt.in))
		var perr *Error
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Parse(%q): %v", tt.in, err)
		case tt.want == "":
		case !errors.As(err, &perr):
			t.Errorf("Parse(%q) = %v, want an *Error at %s", tt.in, err, tt.want)
		case perr.Pos.String() != "f:"+tt.want:
			t.Errorf("Parse(%q) error at %s, want f:%s (%v)", tt.in, perr.Pos, tt.want, err)
		}
	}
}

func TestParseLayout(t *testing.T) {
	lf := "# farm\n\n/~~srv1=10.0.0.1:80;\n  // second\n\t/~~srv2=10.0.0.2:80; /~~SRV2=10.0.0.3:80;\n\n"
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	for _, in := range []string{lf, crlf, "\uFEFF" + lf, "\uFEFF" + crlf} {
		got, err := Parse("balance.bin", []byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		want := []Entry{
			{Pos: Position{"balance.bin", 3, 1}, Name: "srv1", Target: HostPort{"10.0.0.1", 80}},
			{Pos: Position{"balance.bin", 5, 2}, Name: "srv2", Target: HostPort{"10.0.0.2", 80}},
			{Pos: Position{"balance.bin", 5, 23}, Name: "SRV2", Target: HostPort{"10.0.0.3", 80}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", in, got, want)
		}
		if got[1].Key() != got[2].Key() {
			t.Errorf("Key() %q and %q differ", got[1].Key(), got[2].Key())
		}
	}
	for _, in := range []string{"", "\uFEFF", "\n\r\n \t", "# only a comment", "// one\n# two\n"} {
		got, err := Parse("balance.bin", []byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want nothing", in, got, err)
		}
	}
}

func TestTLSKeyword(t *testing.T) {
	tests := []struct {
		k                   TLSKeyword
		encrypted, verified bool
	}{
		{KeywordNone, false, false},
		{KeywordSSL, true, false},
		{KeywordSSLStrict, true, true},
		{KeywordSSLJVMTM, true, false},
		{KeywordSSLJVMTMStrict, true, true},
	}
	for _, tt := range tests {
		if tt.k.Encrypted() != tt.encrypted || tt.k.Verified() != tt.verified {
			t.Errorf("%q: Encrypted %v Verified %v, want %v %v", tt.k, tt.k.Encrypted(), tt.k.Verified(), tt.encrypted, tt.verified)
		}
	}
}
