package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"golang.org/x/net/http/httpproxy"
)

func hp(host string, port uint16) balancebin.HostPort {
	return balancebin.HostPort{Host: host, Port: port}
}

func TestConnectRequest(t *testing.T) {
	got := connectRequest("gw.example.com:443", "")
	want := "CONNECT gw.example.com:443 HTTP/1.1\r\nHost: gw.example.com:443\r\nProxy-Connection: Keep-Alive\r\n\r\n"
	if got != want {
		t.Errorf("no login:\n%q\nwant\n%q", got, want)
	}
	got = connectRequest("[2001:db8::1]:443", basicAuth(balancebin.Proxy{User: "Aladdin", Password: "open sesame"}))
	want = "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n" +
		"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nProxy-Connection: Keep-Alive\r\n\r\n"
	if got != want {
		t.Errorf("Basic:\n%q\nwant\n%q", got, want)
	}
	if strings.Contains(strings.ToLower(got), "connection: close") {
		t.Error("the request asks to close the connection")
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
	if err != nil || req.Method != http.MethodConnect || req.Host != "[2001:db8::1]:443" {
		t.Errorf("the request does not parse as a CONNECT: %v %+v", err, req)
	}
}

func TestNTLMMessages(t *testing.T) {
	neg, err := ntlmNegotiate(balancebin.Proxy{Auth: balancebin.ProxyAuthNTLM, Domain: "MYDOMAIN", User: "u"})
	if err != nil || !strings.HasPrefix(neg, "NTLM TlRMTVNTUAAB") {
		t.Errorf("negotiate %q, %v", neg, err)
	}
	if got := ntlmUser(balancebin.Proxy{Domain: "MYDOMAIN", User: "u"}); got != `MYDOMAIN\u` {
		t.Errorf("user with a domain: %q", got)
	}
	if got := ntlmUser(balancebin.Proxy{User: "u"}); got != "u" {
		t.Errorf("user without a domain: %q", got)
	}
	_, err = ntlmAuthenticate(balancebin.Proxy{User: "u", Password: "s3cret"}, []byte("NTLMSSP\x00\x02\x00\x00\x00garbage"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a malformed challenge: %v", err)
	}
}

func TestChallenges(t *testing.T) {
	h := http.Header{}
	h.Add("Proxy-Authenticate", `Basic realm="a, NTLM b", charset="UTF-8"`)
	h.Add("Proxy-Authenticate", "NTLM TlRMTVNTUAACAAAA")
	h.Add("Proxy-Authenticate", `Negotiate, Digest realm = "x", nonce="y"`)
	h.Add("Proxy-Authenticate", "ntlm")
	cs := challenges(h)
	want := []challenge{
		{"Basic", `realm="a, NTLM b", charset="UTF-8"`},
		{"NTLM", "TlRMTVNTUAACAAAA"},
		{"Negotiate", ""},
		{"Digest", `realm = "x", nonce="y"`},
		{"ntlm", ""},
	}
	if !reflect.DeepEqual(cs, want) {
		t.Errorf("challenges\n%q\nwant\n%q", cs, want)
	}
	if got := offers(cs); !reflect.DeepEqual(got, []string{"Basic", "NTLM", "Negotiate", "Digest"}) {
		t.Errorf("offers %q", got)
	}
	if b, ok := ntlmChallenge(cs); !ok || string(b[:7]) != "NTLMSSP" {
		t.Errorf("NTLM challenge %q %v", b, ok)
	}
	if _, ok := ntlmChallenge(challenges(http.Header{"Proxy-Authenticate": {"NTLM"}})); ok {
		t.Error("a bare NTLM offer read as a challenge")
	}
	if got := challenges(http.Header{}); got != nil {
		t.Errorf("no header: %q", got)
	}
}

func TestLoginFailure(t *testing.T) {
	none := balancebin.Proxy{}
	basic := balancebin.Proxy{Auth: balancebin.ProxyAuthBasic, User: "u", Password: "s3cret"}
	ntlm := balancebin.Proxy{Auth: balancebin.ProxyAuthNTLM, Domain: "D", User: "u", Password: "s3cret"}
	for _, c := range []struct {
		px     balancebin.Proxy
		offers []string
		is     error
		text   string
	}{
		{none, nil, ErrLoginRequired, "the proxy asks for a login and none is configured"},
		{none, []string{"Basic", "NTLM"}, ErrLoginRequired, "the proxy asks for a login (it offers Basic, NTLM) and none is configured"},
		{basic, []string{"basic"}, ErrLoginRefused, "the proxy refused the login"},
		{basic, nil, ErrLoginRefused, "the proxy refused the login"},
		{basic, []string{"Negotiate", "Digest"}, ErrNoCommonScheme, "the proxy offers only Negotiate, Digest; configure a login it accepts"},
		{ntlm, []string{"Basic"}, ErrNoCommonScheme, "the proxy offers only Basic; configure a login it accepts"},
		{ntlm, []string{"NTLM"}, ErrLoginRefused, "the proxy refused the login"},
	} {
		err := loginFailure(c.px, c.offers)
		if !errors.Is(err, c.is) || err.Error() != c.text {
			t.Errorf("%v offering %q: %v, want %q", c.px.Auth, c.offers, err, c.text)
		}
	}
}

func TestHopError(t *testing.T) {
	chain := []balancebin.Proxy{
		{Auth: balancebin.ProxyAuthBasic, User: "u1", Password: "pw1", Address: hp("10.0.0.1", 808)},
		{Auth: balancebin.ProxyAuthNTLM, Domain: "D", User: "u2", Password: "pw2", Address: hp("10.0.0.2", 808)},
	}
	e := hopError(chain, 1, 407, ErrLoginRefused)
	if got, want := e.Error(), "proxy 2 of 2, 10.0.0.2:808 (ntlm): 407 Proxy Authentication Required: the proxy refused the login"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !e.Permanent() || !errors.Is(e, ErrLoginRefused) {
		t.Error("a refused login is not permanent")
	}
	e = hopError(chain, 0, 502, refused(502, "10.0.0.2:808"))
	if got, want := e.Error(), "proxy 1 of 2, 10.0.0.1:808 (basic): 502 Bad Gateway: the proxy could not reach 10.0.0.2:808"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if e.Permanent() {
		t.Error("a 502 is permanent")
	}
	e = hopError(chain, 0, 0, errors.New("dial tcp 10.0.0.1:808: connection refused"))
	if got, want := e.Error(), "proxy 1 of 2, 10.0.0.1:808 (basic): dial tcp 10.0.0.1:808: connection refused"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := hopError(chain, 1, 599, refused(599, "gw:443")).Error(); !strings.Contains(got, ": 599: the proxy did not open a tunnel to gw:443") {
		t.Errorf("unknown status: %q", got)
	}
	if got := refused(403, "gw:443").Error(); got != "the proxy does not allow a tunnel to gw:443" {
		t.Errorf("403: %q", got)
	}
	if !strings.Contains(errNTLMClosed.Error(), "closed the connection after its NTLM challenge") || !errors.Is(errNTLMClosed, errClosed) {
		t.Errorf("NTLM closed: %v", errNTLMClosed)
	}
}

func TestLogin(t *testing.T) {
	for px, want := range map[balancebin.Proxy]string{
		{}: "no login",
		{Auth: balancebin.ProxyAuthBasic, User: "myuser2", Password: "pw"}:                    "Basic as myuser2",
		{Auth: balancebin.ProxyAuthNTLM, Domain: "MYDOMAIN", User: "myuser1", Password: "pw"}: `NTLM as MYDOMAIN\myuser1`,
		{Auth: balancebin.ProxyAuthNTLM, User: "myuser1", Password: "pw"}:                     "NTLM as myuser1",
	} {
		if got := Login(px); got != want {
			t.Errorf("Login(%v) = %q, want %q", px.Auth, got, want)
		}
	}
}

func TestFromConfig(t *testing.T) {
	for _, c := range []struct {
		cfg    httpproxy.Config
		target string
		want   *balancebin.Proxy
		err    string
	}{
		{httpproxy.Config{}, "gw.example.com:443", nil, ""},
		{httpproxy.Config{HTTPProxy: "http://10.0.0.1:3128"}, "gw.example.com:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128"}, "gw.example.com:443",
			&balancebin.Proxy{Address: hp("10.0.0.1", 3128)}, ""},
		{httpproxy.Config{HTTPSProxy: "proxy.corp:8080"}, "gw.example.com:80",
			&balancebin.Proxy{Address: hp("proxy.corp", 8080)}, ""},
		{httpproxy.Config{HTTPSProxy: "http://proxy.corp"}, "gw.example.com:443",
			&balancebin.Proxy{Address: hp("proxy.corp", 80)}, ""},
		{httpproxy.Config{HTTPSProxy: "http://u:p%40ss@[2001:db8::1]:3128"}, "gw.example.com:443",
			&balancebin.Proxy{Auth: balancebin.ProxyAuthBasic, User: "u", Password: "p@ss", Address: hp("2001:db8::1", 3128)}, ""},
		{httpproxy.Config{HTTPSProxy: `http://CORP%5Cu:pw@10.0.0.1:3128`}, "gw.example.com:443",
			&balancebin.Proxy{Auth: balancebin.ProxyAuthNTLM, Domain: "CORP", User: "u", Password: "pw", Address: hp("10.0.0.1", 3128)}, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128", NoProxy: "example.com"}, "gw.example.com:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128", NoProxy: "other.com"}, "gw.example.com:443",
			&balancebin.Proxy{Address: hp("10.0.0.1", 3128)}, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128"}, "127.0.0.1:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128"}, "localhost:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "http://10.0.0.1:3128"}, "[::1]:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "https://u:s3cret@10.0.0.1:3128"}, "gw:443", nil, "HTTPS_PROXY: an https:// proxy is not supported"},
		{httpproxy.Config{HTTPSProxy: "socks5://u:s3cret@10.0.0.1:1080"}, "gw:443", nil, "HTTPS_PROXY: a socks5:// proxy is not supported"},
		{httpproxy.Config{HTTPSProxy: "http://u:s3cret@10.0.0.1:99999"}, "gw:443", nil, "HTTPS_PROXY: the proxy URL has an invalid port"},
		{httpproxy.Config{HTTPSProxy: "http://u:s3cret@%zz", NoProxy: "gw"}, "gw:443", nil, ""},
		{httpproxy.Config{HTTPSProxy: "http://:s3cret@10.0.0.1:3128"}, "gw:443", nil, "HTTPS_PROXY: the proxy URL has a login without a user name"},
		{httpproxy.Config{HTTPSProxy: "http://u:s3cret@%zz"}, "gw:443", nil, "HTTPS_PROXY is not a valid proxy URL"},
	} {
		got, err := fromConfig(&c.cfg, c.target)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%+v for %s: %v", c.cfg, c.target, err)
		case c.err != "" && (err == nil || !strings.HasPrefix(err.Error(), c.err)):
			t.Errorf("%+v for %s: error %v, want %q", c.cfg, c.target, err, c.err)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the error shows the password: %v", err)
		case !reflect.DeepEqual(got, c.want):
			t.Errorf("%+v for %s: %+v, want %+v", c.cfg, c.target, got, c.want)
		}
	}
}

// scripted answers each request read on a pipe with the next answer, then
// sends after; it returns the requests it read.
func scripted(t *testing.T, conn net.Conn, answers []string, after string) <-chan []*http.Request {
	t.Helper()
	out := make(chan []*http.Request, 1)
	go func() {
		var reqs []*http.Request
		defer func() { out <- reqs }()
		br := bufio.NewReader(conn)
		for _, a := range answers {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			reqs = append(reqs, req)
			if _, err := io.WriteString(conn, a+after); err != nil {
				return
			}
			after = ""
		}
	}()
	return out
}

func TestThroughKeepsBytesAfterTheAnswer(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	done := scripted(t, server, []string{"HTTP/1.1 200 Connection established\r\n\r\n"}, "hello")
	conn, status, err := through(client, balancebin.Proxy{}, "gw:443")
	if err != nil || status != 200 {
		t.Fatalf("through: %d %v", status, err)
	}
	reqs := <-done
	if len(reqs) != 1 || reqs[0].Host != "gw:443" || reqs[0].Header.Get("Proxy-Authorization") != "" {
		t.Errorf("requests %+v", reqs)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v", buf, err)
	}
}

func TestDialChainErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				scripted(t, c, []string{
					"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n",
				}, "")
				time.Sleep(time.Second)
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, nil, []balancebin.Proxy{{Address: hp("127.0.0.1", port)}}, "gw:443")
	want := "proxy 1 of 1, 127.0.0.1:" + ln.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):] +
		" (none): 407 Proxy Authentication Required: the proxy asks for a login (it offers Negotiate, Basic) and none is configured"
	var hop *HopError
	if err == nil || err.Error() != want || !errors.As(err, &hop) || !hop.Permanent() {
		t.Errorf("no login: %v\nwant %s", err, want)
	}
	_, err = Dial(ctx, nil, []balancebin.Proxy{{Auth: balancebin.ProxyAuthNTLM, User: "u", Password: "s3cret", Address: hp("127.0.0.1", port)}}, "gw:443")
	if err == nil || !strings.HasSuffix(err.Error(), "the proxy offers only Negotiate, Basic; configure a login it accepts") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Errorf("NTLM: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	sport := silent.Addr().(*net.TCPAddr).AddrPort().Port()
	_, err = Dial(short, nil, []balancebin.Proxy{{Address: hp("127.0.0.1", sport)}}, "gw:443")
	if !errors.As(err, &hop) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a silent proxy: %v", err)
	}

	closing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closing.Close()
	go func() {
		for {
			c, err := closing.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cport := closing.Addr().(*net.TCPAddr).AddrPort().Port()
	_, err = Dial(ctx, nil, []balancebin.Proxy{{Auth: balancebin.ProxyAuthBasic, User: "u", Password: "s3cret", Address: hp("127.0.0.1", cport)}}, "gw:443")
	if !errors.As(err, &hop) || !errors.Is(err, errClosed) || !strings.HasPrefix(err.Error(), fmt.Sprintf("proxy 1 of 1, 127.0.0.1:%d (basic)", cport)) ||
		strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a proxy that closes the connection: %v", err)
	}
}
