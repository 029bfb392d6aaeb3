package agent

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// testProxy is an HTTP proxy on loopback that tunnels CONNECT requests,
// with a Basic login when it has a user.
type testProxy struct {
	addr    balancebin.HostPort
	targets chan string
	// aliases maps a target host:port that only the proxy can resolve to
	// the address it reaches.
	aliases sync.Map
}

// fakeProxy starts a testProxy that wants user:password, or no login when
// user is empty.
func fakeProxy(t *testing.T, user, password string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	p := &testProxy{addr: balancebin.HostPort{Host: "127.0.0.1", Port: port}, targets: make(chan string, 100)}
	want := ""
	if user != "" {
		want = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, want)
		}
	}()
	return p
}

// serve answers one CONNECT on c and tunnels it.
func (p *testProxy) serve(c net.Conn, wantAuth string) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	if req.Header.Get("Proxy-Authorization") != wantAuth {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.targets <- req.Host
	dest := req.Host
	if alias, ok := p.aliases.Load(dest); ok {
		dest = alias.(string)
	}
	up, err := net.Dial("tcp", dest)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() {
		io.Copy(up, br)
		up.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, up)
}

// target returns the next target the proxy tunnelled to.
func (p *testProxy) target(t *testing.T) string {
	t.Helper()
	select {
	case s := <-p.targets:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy got no CONNECT")
		return ""
	}
}
