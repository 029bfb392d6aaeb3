package e2e

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TCPPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func TCPPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client.(*net.TCPConn), server.(*net.TCPConn)
}

// ServeTCP starts a TCP service on loopback that runs handle on each
// connection in a goroutine of its own and closes the connection when
// handle returns; the service stops when the test ends. It returns the
// service's address.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// EchoServer starts a TCP service on loopback that sends back what it
// receives and closes its writing side at the end of its input; it returns
// the service's address.
func EchoServer(t testing.TB) string {
	t.Helper()
	return ServeTCP(t, func(conn net.Conn) {
		io.Copy(conn, conn)
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn)
	})
}

// Ports FreePort hands out: below the system's range of ephemeral ports
// (32768 and up on Linux), so that no outgoing connection takes one
// between FreePort and the process that listens on it.
const (
	firstFreePort = 20000
	lastFreePort  = 32767
)

// givenPorts are the ports FreePort handed out in this process, never
// handed out twice: parallel tests start their gateways at once.
var givenPorts struct {
	sync.Mutex
	set map[int]bool
}

// FreePort returns a TCP port on loopback that nothing listens on now
// and that this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn returns a TCP port that nothing listens on now at any of
// the addresses ips, such as the loopback addresses of a cluster's
// gateways, which all listen on one port, and that this process has not
// handed out before.
func FreePortOn(t testing.TB, ips ...string) int {
	t.Helper()
	givenPorts.Lock()
	defer givenPorts.Unlock()
	if givenPorts.set == nil {
		givenPorts.set = make(map[int]bool)
	}
	for range 1000 {
		port := firstFreePort + rand.IntN(lastFreePort-firstFreePort+1)
		if givenPorts.set[port] {
			continue
		}
		if !portFree(port, ips) {
			continue
		}
		givenPorts.set[port] = true
		return port
	}
	t.Fatal("no free port found")
	return 0
}

// portFree reports whether a listener could take port at each of ips.
func portFree(port int, ips []string) bool {
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// WaitPort waits until something accepts on addr; it fails the test at
// once if p, the process that should listen, has ended.
func WaitPort(t testing.TB, p *Process, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.Exited() {
			t.Fatalf("%s exited (%v) before listening on %s; its output:\n%s", p.Log.Name, p.Cmd.ProcessState, addr, p.Log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RDPConnectionRequest builds an RDP client's first packet: a TPKT with an
// X.224 Connection Request, the routing line when not empty, and an
// RDP_NEG_REQ asking for TLS and CredSSP, as FreeRDP sends it.
func RDPConnectionRequest(routing string) []byte {
	negReq := []byte{0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00}
	body := append([]byte{0xe0, 0, 0, 0, 0, 0}, routing...)
	body = append(body, negReq...)
	packet := []byte{3, 0, 0, 0, byte(len(body))}
	packet = append(packet, body...)
	binary.BigEndian.PutUint16(packet[2:], uint16(len(packet)))
	return packet
}
