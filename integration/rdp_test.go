package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tildegate/tildegate/internal/e2e"
)

// rdpServer is a TCP peer that reads an RDP client's first packet, keeps
// it, answers "confirm" and then echoes what it receives.
type rdpServer struct {
	addr     string
	requests chan []byte
}

func newRDPServer(t *testing.T) *rdpServer {
	t.Helper()
	s := &rdpServer{requests: make(chan []byte, 16)}
	s.addr = e2e.ServeTCP(t, s.serve)
	return s
}

func (s *rdpServer) serve(c net.Conn) {
	header := make([]byte, 4)
	if _, err := io.ReadFull(c, header); err != nil {
		return
	}
	packet := make([]byte, binary.BigEndian.Uint16(header[2:]))
	copy(packet, header)
	if _, err := io.ReadFull(c, packet[4:]); err != nil {
		return
	}
	s.requests <- packet
	if _, err := c.Write([]byte("confirm")); err != nil {
		return
	}
	io.Copy(c, c)
}

// request returns the next first packet the server got.
func (s *rdpServer) request(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-s.requests:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("the RDP server got no connection request")
		return nil
	}
}

// rdpGatewayConfig serves the balance file on the TLS site and on a plain
// HTTP site with HTTP/2 without TLS, both behind the RDP listener wrapper
// with the given options. A short read_header timeout shows that Caddy's
// deadlines do not reach RDP sessions.
func rdpGatewayConfig(logFile, balance, wrapperOptions string) string {
	servers := fmt.Sprintf(`	servers {
		listener_wrappers {
			tildegate_rdp {
%s
			}
			tls
		}
		protocols h1 h2 h2c
		timeouts {
			read_header 500ms
		}
	}
`, wrapperOptions)
	return globalOptions(logFile, servers) + fmt.Sprintf(`
localhost:%d {
	tildegate {
		balance_file %s
	}
	respond "fallthrough {path}" 200
}

http://localhost:%d {
	respond "plain {path} {http.request.proto}" 200
}
`, httpsPort, balance, httpPort)
}

// rdpSession is a raw RDP client connection through the gateway.
type rdpSession struct{ net.Conn }

// dialRDP connects to the gateway's TLS port and sends packet.
func dialRDP(t *testing.T, packet []byte) *rdpSession {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(packet); err != nil {
		t.Fatal(err)
	}
	return &rdpSession{c}
}

// expect reads len(want) bytes and compares them with want.
func (s *rdpSession) expect(t *testing.T, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// echo sends msg and expects it back.
func (s *rdpSession) echo(t *testing.T, msg string) {
	t.Helper()
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	s.expect(t, msg)
}

// expectClosed waits for the gateway to close the connection.
func (s *rdpSession) expectClosed(t *testing.T) {
	t.Helper()
	n, err := s.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed: %d bytes, %v", n, err)
	}
}

// waitLog waits until the log file has a line with every one of parts.
func waitLog(t *testing.T, logFile string, parts ...string) string {
	t.Helper()
	var found string
	eventually(t, 5*time.Second, func() error {
		data, _ := os.ReadFile(logFile)
		for line := range strings.Lines(string(data)) {
			if containsAll(line, parts) {
				found = line
				return nil
			}
		}
		return fmt.Errorf("no log line with %q in:\n%s", parts, data)
	})
	return found
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestRDPOnWebPort: RDP, HTTPS with HTTP/1.1 and HTTP/2, plain HTTP and
// HTTP/2 with prior knowledge share the ports; RDP goes by each form of
// routing line to its RDPPORT target, with the line taken out.
func TestRDPOnWebPort(t *testing.T) {
	rdp, web := newRDPServer(t), newBackend(t, "web", false)
	other := newRDPServer(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf(
		"/~~srv1=%s;\n/~~srv1=%s RDPPORT;\n/~~Srv2=%s RDPPORT;\n",
		web.hostPort(), rdp.addr, other.addr))
	startGateway(t, rdpGatewayConfig(logFile, balance, ""), "caddyfile")

	stripped := e2e.RDPConnectionRequest("")
	for _, tt := range []struct {
		routing string
		server  *rdpServer
	}{
		{"Cookie: mstshash=/~~srv1\r\n", rdp},
		{"Cookie: msts=/~~SRV1\r\n", rdp},
		{"/~~srv1\r\n", rdp},
		{"Cookie: mstshash=/~~srv2\r\n", other},
	} {
		s := dialRDP(t, e2e.RDPConnectionRequest(tt.routing))
		if got := tt.server.request(t); !bytes.Equal(got, stripped) {
			t.Errorf("%q: the server got % x, want % x", tt.routing, got, stripped)
		}
		s.expect(t, "confirm")
		s.echo(t, "client data "+tt.routing)
		s.Close()
	}
	// The same ports still serve the web, byte for byte.
	client := caddytest.CreateTestingTransport()
	h2 := &http.Client{Transport: client, Timeout: 5 * time.Second}
	res, body := get(t, h2, gatewayURL+"/~~srv1/path")
	if res.ProtoMajor != 2 || !strings.Contains(body, `"backend":"web"`) {
		t.Errorf("HTTPS over HTTP/2: %s %q", res.Proto, body)
	}
	res, body = get(t, http1Client(), gatewayURL+"/other")
	if res.ProtoMajor != 1 || body != "fallthrough /other" {
		t.Errorf("HTTPS over HTTP/1.1: %s %q", res.Proto, body)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	res, body = get(t, plain, fmt.Sprintf("http://localhost:%d/x", httpPort))
	if body != "plain /x HTTP/1.1" {
		t.Errorf("plain HTTP: %s %q", res.Proto, body)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &protocols}}
	res, body = get(t, h2c, fmt.Sprintf("http://localhost:%d/y", httpPort))
	if res.ProtoMajor != 2 || body != "plain /y HTTP/2.0" {
		t.Errorf("HTTP/2 with prior knowledge: %s %q", res.Proto, body)
	}
	// TLS clients that send their hello in pieces lose no byte either.
	raw, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort))
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(&trickle{Conn: raw}, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Errorf("TLS handshake sent a byte at a time: %v", err)
	}
	tc.Close()

	line := waitLog(t, logFile, "rdp connection opened", `"name":"srv2"`)
	if !strings.Contains(line, `"remote_addr":"127.0.0.1:`) || !strings.Contains(line, other.addr) {
		t.Errorf("open log line lacks the client or the target: %s", line)
	}
	waitLog(t, logFile, "rdp connection closed", `"name":"srv1"`, `"bytes_from_client":`, `"bytes_to_client":`, `"duration":`)
}

// trickle writes one byte at a time.
type trickle struct{ net.Conn }

func (c *trickle) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// TestRDPRefusals: an unknown name, a request without a name, a packet
// that is not a Connection Request and a client too slow to send it are
// closed and logged with the client's address; the limits per name and
// per client address hold.
func TestRDPRefusals(t *testing.T) {
	rdp := newRDPServer(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s RDPPORT;\n/~~srv2=%s RDPPORT;\n", rdp.addr, rdp.addr))
	startGateway(t, rdpGatewayConfig(logFile, balance,
		"\t\t\t\tfirst_packet_timeout 300ms\n\t\t\t\tmax_conns_per_name 2\n\t\t\t\tmax_conns_per_client 3"), "caddyfile")

	cases := []struct {
		name   string
		packet []byte
		reason string
	}{
		{"unknown name", e2e.RDPConnectionRequest("Cookie: mstshash=/~~nosuch\r\n"), `no server named \"nosuch\"`},
		{"no name", e2e.RDPConnectionRequest("Cookie: mstshash=alice\r\n"), "names no server"},
		{"not a connection request", []byte{3, 0, 0, 11, 6, 0xd0, 0, 0, 0, 0, 0}, "TPDU code 0xd0"},
		{"bad name", e2e.RDPConnectionRequest("Cookie: mstshash=/~~a b\r\n"), "invalid routing name"},
	}
	for _, tc := range cases {
		start := time.Now()
		dialRDP(t, tc.packet).expectClosed(t)
		line := waitLog(t, logFile, "rdp connection refused", tc.reason)
		if !strings.Contains(line, `"remote_addr":"127.0.0.1:`) {
			t.Errorf("%s: no client address in %s", tc.name, line)
		}
		t.Logf("%s: closed after %s", tc.name, time.Since(start).Round(time.Millisecond))
	}

	slow := dialRDP(t, e2e.RDPConnectionRequest("Cookie: mstshash=/~~srv1\r\n")[:6])
	start := time.Now()
	slow.expectClosed(t)
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 3*time.Second {
		t.Errorf("a slow first packet was closed after %s, want about 300ms", waited)
	}
	waitLog(t, logFile, "rdp connection refused", "no whole connection request within 300ms")

	first := dialRDP(t, e2e.RDPConnectionRequest("Cookie: mstshash=/~~srv1\r\n"))
	first.expect(t, "confirm")
	second := dialRDP(t, e2e.RDPConnectionRequest("/~~SRV1\r\n"))
	second.expect(t, "confirm")
	dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n")).expectClosed(t)
	waitLog(t, logFile, "rdp connection refused", "already 2 RDP connections")
	first.Close()
	waitLog(t, logFile, "rdp connection closed", `"name":"srv1"`)
	third := dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n"))
	third.expect(t, "confirm")
	third.echo(t, "after one ended")
	second.echo(t, "still here")

	// A third connection from this address is allowed, a fourth is not.
	dialRDP(t, e2e.RDPConnectionRequest("/~~srv2\r\n")).expect(t, "confirm")
	dialRDP(t, e2e.RDPConnectionRequest("/~~srv2\r\n")).expectClosed(t)
	waitLog(t, logFile, "rdp connection refused", `"name":"srv2"`, "already 3 RDP connections from this address")
}

// TestRDPSurvivesReloads: config reloads, a balance.bin edit that moves
// the name and a reload that moves the log leave an RDP stream running,
// and its end is logged where the log now goes.
func TestRDPSurvivesReloads(t *testing.T) {
	rdp, moved := newRDPServer(t), newRDPServer(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s RDPPORT;\n", rdp.addr))
	config := rdpGatewayConfig(logFile, balance, "")
	startGateway(t, config, "caddyfile")

	s := dialRDP(t, e2e.RDPConnectionRequest("Cookie: mstshash=/~~srv1\r\n"))
	s.expect(t, "confirm")
	time.Sleep(time.Second) // past Caddy's read_header timeout
	s.echo(t, "after a quiet second")
	for i := range 5 {
		// A changed option makes each load a real reload.
		if err := postConfig(rdpGatewayConfig(logFile, balance, fmt.Sprintf("\t\t\t\tmax_conns_per_name %d", 10+i))); err != nil {
			t.Fatal(err)
		}
		s.SetDeadline(time.Now().Add(10 * time.Second))
		s.echo(t, fmt.Sprintf("after reload %d", i+1))
	}
	writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s RDPPORT;\n", moved.addr))
	waitLog(t, logFile, "balance files reloaded")
	s.echo(t, "after the edit")
	n := dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n"))
	moved.request(t)
	n.expect(t, "confirm")

	// A reload that moves the log: the session's end is logged in the new
	// file, not lost with the old one.
	newLog := filepath.Join(dir, "new.log")
	if err := postConfig(rdpGatewayConfig(newLog, balance, "")); err != nil {
		t.Fatal(err)
	}
	s.echo(t, "after the log moved")
	s.Close()
	line := waitLog(t, newLog, "rdp connection closed", `"target":"`+rdp.addr+`"`)
	if !strings.Contains(line, `"bytes_to_client":`) {
		t.Errorf("no byte counts: %s", line)
	}
}

// TestRDPWrapperAfterTLS: a wrapper without tls after it comes after TLS,
// Caddy's default, where it could only see decrypted bytes: it says so in
// the log, and the site keeps working.
func TestRDPWrapperAfterTLS(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	servers := "\tservers {\n\t\tlistener_wrappers {\n\t\t\ttildegate_rdp\n\t\t}\n\t}\n"
	startGateway(t, globalOptions(logFile, servers)+fmt.Sprintf("\nlocalhost:%d {\n\trespond \"site\"\n}\n", httpsPort), "caddyfile")
	_, body := get(t, http1Client(), gatewayURL+"/")
	if body != "site" {
		t.Errorf("site answered %q", body)
	}
	waitLog(t, logFile, "tildegate_rdp comes after tls", "put it before tls")
}
