package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestRDPOnPlainHTTPSite: a plain-HTTP site behind the RDP listener
// wrapper, no TLS anywhere, takes many RDP connections at once, each whole
// and byte for byte, while HTTP/1.1 and HTTP/2 with prior knowledge go on
// on the same port. net/http reads a new connection twice there (the h2c
// preface check, then the request); a read after the takeover must not
// take the RDP client's bytes.
func TestRDPOnPlainHTTPSite(t *testing.T) {
	rdp := &rdpServer{requests: make(chan []byte, 1000)}
	rdp.addr = e2e.ServeTCP(t, rdp.serve)
	web := newBackend(t, "web", false)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s;\n/~~srv1=%s RDPPORT;\n", web.hostPort(), rdp.addr))
	servers := `	servers {
		listener_wrappers {
			tildegate_rdp
		}
	}
`
	startGateway(t, globalOptions(logFile, servers)+fmt.Sprintf(`
http://:%d {
	tildegate {
		balance_file %s
	}
	respond "plain {path} {http.request.proto}" 200
}
`, httpPort, balance), "caddyfile")

	plainAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: &protocols}}
	h1 := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	const sessions = 70
	stripped := string(e2e.RDPConnectionRequest(""))
	var wg sync.WaitGroup
	errs := make(chan error, 3*sessions)
	for i := range sessions {
		wg.Go(func() {
			if err := plainRDPSession(plainAddr, i); err != nil {
				errs <- fmt.Errorf("RDP session %d: %w", i, err)
			}
		})
		wg.Go(func() {
			_, body, err := e2e.Get(h1, fmt.Sprintf("http://%s/x%d", plainAddr, i))
			if want := fmt.Sprintf("plain /x%d HTTP/1.1", i); err != nil || body != want {
				errs <- fmt.Errorf("HTTP/1.1 request %d: %q, %v; want %q", i, body, err, want)
			}
		})
		wg.Go(func() {
			_, body, err := e2e.Get(h2c, fmt.Sprintf("http://%s/~~srv1/y%d", plainAddr, i))
			if want := fmt.Sprintf(`"path":"/y%d"`, i); err != nil || !strings.Contains(body, want) {
				errs <- fmt.Errorf("h2c request %d: %q, %v; want %s", i, body, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		if failed <= 10 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sessions and requests failed", failed, 3*sessions)
	}
	for i := range sessions {
		select {
		case got := <-rdp.requests:
			if string(got) != stripped {
				t.Fatalf("request %d: the server got % x, want % x", i, got, stripped)
			}
		default:
			t.Fatalf("the RDP server got %d connection requests, want %d", i, sessions)
		}
	}
	res, body := get(t, h2c, fmt.Sprintf("http://%s/z", plainAddr))
	if res.ProtoMajor != 2 || body != "plain /z HTTP/2.0" {
		t.Errorf("h2c afterwards: %s %q", res.Proto, body)
	}
}

// plainRDPSession is RDP client number i: its connection request, the
// server's confirm, then a few messages of its own echoed back.
func plainRDPSession(addr string, i int) error {
	c, err := net.DialTimeout("tcp", addr, 20*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(e2e.RDPConnectionRequest("Cookie: mstshash=/~~srv1\r\n")); err != nil {
		return err
	}
	if err := expectBytes(c, "confirm"); err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	for j := range 5 {
		msg := fmt.Sprintf("session %d message %d %s", i, j, strings.Repeat("x", 100*j))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		if err := expectBytes(c, msg); err != nil {
			return fmt.Errorf("echo %d: %w", j, err)
		}
	}
	return nil
}

// expectBytes reads len(want) bytes from c and compares them with want.
func expectBytes(c net.Conn, want string) error {
	got := make([]byte, len(want))
	if n, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read %q: %w", got[:n], err)
	}
	if string(got) != want {
		return fmt.Errorf("read %q, want %q", got, want)
	}
	return nil
}
