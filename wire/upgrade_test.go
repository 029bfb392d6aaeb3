package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveOnce answers one upgrade request on a loopback listener with the
// raw answer, and sends the request it read on got.
func serveOnce(t *testing.T, answer string) (addr string, got <-chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *http.Request, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			close(ch)
			return
		}
		ch <- req
		io.WriteString(conn, answer)
	}()
	return ln.Addr().String(), ch
}

func dialUpgrade(t *testing.T, addr string, hello Hello) (*http.Response, *bufio.Reader, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return Upgrade(conn, "gw.example:8443", "Home", hello.String())
}

func TestUpgradeSwitches(t *testing.T) {
	ch := Challenge{Version: Version, Nonce: filled(NonceSize, 3), Bound: true, Share: filled(ShareSize, 4)}
	addr, got := serveOnce(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: TILDEGATE/3\r\nConnection: Upgrade\r\n"+
		HeaderChallenge+": "+ch.String()+"\r\n\r\n"+"\x04\x00\x00after")
	hello := Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)}
	res, br, err := dialUpgrade(t, addr, hello)
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	req := <-got
	if req.Method != http.MethodGet || req.URL.Path != "/~~Home" || req.Host != "gw.example:8443" ||
		req.Header.Get("Upgrade") != UpgradeToken || req.Header.Get("Connection") != "Upgrade" {
		t.Errorf("request %s %s, Host %q, headers %v", req.Method, req.URL, req.Host, req.Header)
	}
	if parsed, err := ParseHello(req.Header.Get(HeaderHello)); err != nil || !bytes.Equal(parsed.Nonce, hello.Nonce) || parsed.Role != RoleControl {
		t.Errorf("hello as sent: %+v, %v", parsed, err)
	}
	if parsed, err := ParseChallenge(res.Header.Get(HeaderChallenge)); err != nil || !parsed.Bound {
		t.Errorf("challenge: %+v, %v", parsed, err)
	}
	// Bytes after the 101 belong to the protocol and stay in the reader.
	f, err := ReadFrame(br)
	if err != nil || f.Type != FrameAlive {
		t.Errorf("frame after the 101: %+v, %v", f, err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "after" {
		t.Errorf("bytes after the frame: %q", rest)
	}
}

func TestUpgradeRefused(t *testing.T) {
	addr, _ := serveOnce(t, "HTTP/1.1 409 Conflict\r\n"+HeaderRefusal+": name-taken\r\nContent-Type: text/plain\r\n"+
		"Content-Length: 28\r\n\r\n\"home\" is held by an agent\r\n")
	_, _, err := dialUpgrade(t, addr, Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)})
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Code != CodeNameTaken || ref.Reason != `"home" is held by an agent` {
		t.Fatalf("Upgrade: %v, want a name-taken refusal with its reason", err)
	}
	if ref.Error() != `refused: name-taken: "home" is held by an agent` {
		t.Errorf("Error() = %q", ref.Error())
	}
	if (&Refusal{Code: CodeThrottled}).Error() != "refused: throttled" {
		t.Errorf("a refusal without reason prints %q", (&Refusal{Code: CodeThrottled}).Error())
	}
}

func TestUpgradeNotTildegate(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 403 Forbidden\r\n" + HeaderRefusal + ": no-such-code\r\nContent-Length: 0\r\n\r\n",
	} {
		addr, _ := serveOnce(t, answer)
		_, _, err := dialUpgrade(t, addr, Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)})
		var ref *Refusal
		if err == nil || errors.As(err, &ref) || !strings.Contains(err.Error(), "not a tildegate upgrade") {
			t.Errorf("answer %q: %v, want an error that is not a refusal", strings.SplitN(answer, "\r\n", 2)[0], err)
		}
	}
	addr, _ := serveOnce(t, "garbage\r\n\r\n")
	if _, _, err := dialUpgrade(t, addr, Hello{Version: Version, Role: RoleControl, Nonce: filled(NonceSize, 1)}); err == nil ||
		!strings.Contains(err.Error(), "reading the gateway's answer") {
		t.Errorf("malformed answer: %v", err)
	}
}

// TestRetryAfter: a refusal's Retry-After is read in seconds and capped,
// since anyone on a plain-HTTP path could forge one.
func TestRetryAfter(t *testing.T) {
	for value, want := range map[string]time.Duration{
		"": 0, "soon": 0, "-5": 0, "0": 0, "30": 30 * time.Second,
		"600": MaxRetryAfter, "99999999999999999": MaxRetryAfter, "999999999999999999999": 0,
	} {
		if got := retryAfter(value); got != want {
			t.Errorf("Retry-After %q: %s, want %s", value, got, want)
		}
	}
}
