package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

func newTestWriter(tlsOn bool) *prefixWriter {
	r := httptest.NewRequest("GET", "http://gw.example/~~srv1/app", nil)
	if tlsOn {
		r.TLS = &tls.ConnectionState{}
	}
	rt := &route{name: "srv1", prefix: "/~~srv1", backendHosts: []string{"10.0.0.7", "app.internal"}}
	return getPrefixWriter(nil, httptest.NewRecorder(), r, rt)
}

type rewriteCase struct{ in, want string }

func checkRewrites(t *testing.T, name string, rewrite func(string) string, cases []rewriteCase) {
	t.Helper()
	for _, c := range cases {
		if got := rewrite(c.in); got != c.want {
			t.Errorf("%s(%q) = %q, want %q", name, c.in, got, c.want)
		}
	}
}

func TestRewriteURL(t *testing.T) {
	cases := []rewriteCase{
		{"/login", "/~~srv1/login"},
		{"/", "/~~srv1/"},
		{"/~~srv1/already", "/~~srv1/already"},
		{"/~~SRV1/already", "/~~SRV1/already"},
		{"/~~srv10/other", "/~~srv10/other"},
		{"https://gw.example/~~srv2/x", "https://gw.example/~~srv2/x"},
		{"//cdn.example/x.js", "//cdn.example/x.js"},
		{"relative/page", "relative/page"},
		{"http://10.0.0.7:8096/login?x=1#top", "https://gw.example/~~srv1/login?x=1#top"},
		{"http://10.0.0.7", "https://gw.example/~~srv1/"},
		{"https://APP.internal/a%2Fb", "https://gw.example/~~srv1/a%2Fb"},
		{"http://10.0.0.7/~~srv1/x", "https://gw.example/~~srv1/x"},
		{"https://gw.example/login", "https://gw.example/~~srv1/login"},
		{"https://gw.example/~~srv1/ok", "https://gw.example/~~srv1/ok"},
		{"https://elsewhere.example/login", "https://elsewhere.example/login"},
		{"mailto:admin@10.0.0.7", "mailto:admin@10.0.0.7"},
		{"http://[bad", "http://[bad"},
	}
	checkRewrites(t, "rewriteURL", newTestWriter(true).rewriteURL, cases)
	if got := newTestWriter(false).rewriteURL("http://10.0.0.7/x"); got != "http://gw.example/~~srv1/x" {
		t.Errorf("plain HTTP gateway: got %q", got)
	}
}

func TestRewriteCookie(t *testing.T) {
	cases := []rewriteCase{
		{"sid=1; Path=/; HttpOnly", "sid=1; Path=/~~srv1/; HttpOnly"},
		{"sid=1; path=/app", "sid=1; Path=/~~srv1/app"},
		{"sid=1; Path=/~~srv1/app", "sid=1; Path=/~~srv1/app"},
		{"sid=1", "sid=1"},
		{"sid=1; Domain=app.internal; Path=/", "sid=1; Path=/~~srv1/"},
		{"sid=1; Domain=.internal; Secure", "sid=1; Secure"},
		{"sid=1; Domain=gw.example; Path=/x", "sid=1; Domain=gw.example; Path=/~~srv1/x"},
		{"sid=1; Domain=10.0.0.7", "sid=1"},
		{"sid=1; Domain=ternal", "sid=1; Domain=ternal"},
		{"__Host-sid=1; Path=/; Secure", "__Host-sid=1; Path=/; Secure"},
	}
	checkRewrites(t, "rewriteCookie", newTestWriter(true).rewriteCookie, cases)
}

func TestRewriteRefresh(t *testing.T) {
	cases := []rewriteCase{
		{"5; url=/next", "5; url=/~~srv1/next"},
		{"0;URL='http://10.0.0.7/a'", "0; url=https://gw.example/~~srv1/a"},
		{"5", "5"},
		{"5; other", "5; other"},
	}
	checkRewrites(t, "rewriteRefresh", newTestWriter(true).rewriteRefresh, cases)
}

func TestPrefixWriterRewritesOnceBeforeStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://gw.example/~~srv1/x", nil)
	rt := &route{name: "srv1", prefix: "/~~srv1", backendHosts: []string{"10.0.0.7"}}
	pw := getPrefixWriter(nil, rec, r, rt)
	pw.Header().Set("Location", "/a")
	pw.Header().Add("Set-Cookie", "a=1; Path=/")
	pw.Header().Add("Set-Cookie", "b=2; Path=/b")
	pw.WriteHeader(http.StatusEarlyHints)
	if got := pw.Header().Get("Location"); got != "/a" {
		t.Fatalf("1xx response rewrote Location to %q", got)
	}
	pw.WriteHeader(http.StatusFound)
	_, _ = pw.Write([]byte("body /a"))
	putPrefixWriter(pw)
	res := rec.Result()
	res.Header = rec.Header() // the recorder snapshots headers at the 1xx
	if got := res.Header.Get("Location"); got != "/~~srv1/a" {
		t.Errorf("Location = %q", got)
	}
	if got := res.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1; Path=/~~srv1/" || got[1] != "b=2; Path=/~~srv1/b" {
		t.Errorf("Set-Cookie = %q", got)
	}
	if rec.Body.String() != "body /a" {
		t.Errorf("body changed: %q", rec.Body.String())
	}
}

func TestPrefixWriterImplicitStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://gw.example/~~srv1/x", nil)
	pw := getPrefixWriter(nil, rec, r, &route{prefix: "/~~srv1"})
	pw.Header().Set("Content-Location", "/doc")
	_, _ = pw.Write([]byte("x"))
	if got := rec.Result().Header.Get("Content-Location"); got != "/~~srv1/doc" {
		t.Errorf("Content-Location = %q", got)
	}
}
