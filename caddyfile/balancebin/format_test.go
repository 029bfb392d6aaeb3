package balancebin

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	in := "\uFEFF# comment\r\nSSL_STRICT\t /~~Portal=portal.example.com:0443 ;/~~v6=[2001:db8::1]:80\tRDPPORT;\r\n" +
		"/~~home=se cret#:*  ;  /~~home2=pw#:01;/~~b=pw#:*51.254.*;"
	entries, err := Parse("balance.bin", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "SSL_STRICT /~~Portal=portal.example.com:443;\n" +
		"/~~v6=[2001:db8::1]:80 RDPPORT;\n" +
		"/~~home=se cret#:*;\n" +
		"/~~home2=pw#:1;\n" +
		"/~~b=pw#:*51.254.*;\n"
	if got := string(Format(entries)); got != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
	if got := Format(nil); len(got) != 0 {
		t.Errorf("Format(nil) = %q", got)
	}
	// Entries built by hand: a back entry with a filter or no port takes
	// the "*" form.
	built := []Entry{
		{Name: "x", Back: true, Password: "p", Filter: Filter{Kind: FilterIP, Value: "1.2.3.4"}},
		{Name: "y", Back: true, Password: "p"},
	}
	if got, want := string(Format(built)), "/~~x=p#:*1.2.3.4;\n/~~y=p#:*;\n"; got != want {
		t.Errorf("Format(built) = %q, want %q", got, want)
	}
}

func TestFormatBack(t *testing.T) {
	in := "SSL\t/~~a=pw#gw.example:0443 -> d\\u:p@[::1]:3128 => 127.0.0.1:80 ;\n/~~b=pw#gw.example:80;" +
		"/~~c=pw#gw.example:443  RDPPORT 127.0.0.1:03389\t;/~~d=pw#gw.example:443 => 127.0.0.1:80  RDPPORT [::1]:3390;"
	entries, err := ParseBack("backbalance.bin", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "SSL /~~a=pw#gw.example:443 -> d\\u:p@[::1]:3128 => 127.0.0.1:80;\n" +
		"/~~b=pw#gw.example:80;\n" +
		"/~~c=pw#gw.example:443 RDPPORT 127.0.0.1:3389;\n" +
		"/~~d=pw#gw.example:443 => 127.0.0.1:80 RDPPORT [::1]:3390;\n"
	if got := string(FormatBack(entries)); got != want {
		t.Errorf("FormatBack =\n%s\nwant\n%s", got, want)
	}
	built := []BackEntry{
		{Name: "x", Password: "p", Gateway: HostPort{"gw", 443}},
		{Name: "y", Password: "p", Gateway: HostPort{"gw", 443}, Local: HostPort{"10.0.0.1", 8080}},
		{Name: "z", Password: "p", Gateway: HostPort{"gw", 443}, Local: defaultLocal, RDP: defaultRDP},
		{Name: "r", Password: "p", Gateway: HostPort{"gw", 443}, RDP: HostPort{"10.0.0.5", 3389}},
	}
	want = "/~~x=p#gw:443;\n/~~y=p#gw:443 => 10.0.0.1:8080;\n/~~z=p#gw:443;\n/~~r=p#gw:443 RDPPORT 10.0.0.5:3389;\n"
	if got := string(FormatBack(built)); got != want {
		t.Errorf("FormatBack(built) = %q, want %q", got, want)
	}
}

func TestRoundTripExamples(t *testing.T) {
	all := strings.Join(balanceExamples, "\n")
	for _, in := range append(balanceExamples, all, strings.ReplaceAll(all, "\n", "\r\n")) {
		entries, err := Parse("balance.bin", []byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		checkRoundTrip(t, []byte(in), entries)
	}
	all = strings.Join(backExamples, "\n")
	for _, in := range append(backExamples, all, strings.ReplaceAll(all, "\n", "\r\n")) {
		entries, err := ParseBack("backbalance.bin", []byte(in))
		if err != nil {
			t.Fatalf("ParseBack(%q): %v", in, err)
		}
		checkBackRoundTrip(t, []byte(in), entries)
	}
}

func TestMaskedBack(t *testing.T) {
	in := `SSL /~~srv1=Top#Secret1#gw.example:443 -> \u1:Proxy1Pass@10.0.0.1:808 -> dom\u2:Proxy:2@Pass@10.0.0.2:808 -> u3:Proxy3Pass@10.0.0.3:808 -> 10.0.0.4:808 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3389;`
	entries, err := ParseBack("backbalance.bin", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	e := entries[0]
	got := MaskedBack(e)
	want := `SSL /~~srv1=****#gw.example:443 -> \u1:****@10.0.0.1:808 -> dom\u2:****@10.0.0.2:808 -> u3:****@10.0.0.3:808 -> 10.0.0.4:808 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3389;`
	if got != want {
		t.Errorf("MaskedBack =\n%s\nwant\n%s", got, want)
	}
	secrets := []string{e.Password}
	for _, px := range e.Proxies {
		if px.Password != "" {
			secrets = append(secrets, px.Password)
		}
	}
	if len(secrets) != 4 {
		t.Fatalf("parsed secrets %q, want 4", secrets)
	}
	for _, s := range append(secrets, "Secret", "Proxy", "Pass") {
		if strings.Contains(got, s) {
			t.Errorf("MaskedBack leaks %q: %s", s, got)
		}
	}
	// The entry itself is left alone.
	if e.Password != "Top#Secret1" || e.Proxies[0].Password != "Proxy1Pass" {
		t.Errorf("MaskedBack changed its argument: %+v", e)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Position{"balance.bin", 3, 12}, "x", "a port number (1-65535)"}, `balance.bin:3:12: found "x", expected a port number (1-65535)`},
		{Error{Position{"b", 1, 2}, "", `";"`}, `b:1:2: found end of file, expected ";"`},
		{Error{Position{"b", 1, 2}, "\n", `";"`}, `b:1:2: found end of line, expected ";"`},
		{Error{Position{"", 4, 5}, "\t", `";"`}, `4:5: found "\t", expected ";"`},
		{Error{Position{"b", 1, 6}, "***", "a port number (1-65535)"}, `b:1:6: found text not quoted in case it is a password, expected a port number (1-65535)`},
		{Error{Position{"b", 1, 1}, "~~a=***", `"/~~"`}, `b:1:1: found "~~a=***", expected "/~~"`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
	// Shortened after the password is hidden.
	_, err := Parse("b", []byte("~~"+strings.Repeat("a", 40)+"=h:1;"))
	want := `b:1:1: found "~~` + strings.Repeat("a", 30) + `...", expected "/~~"`
	if err == nil || err.Error() != want {
		t.Errorf("long word: got %v, want %s", err, want)
	}
}
