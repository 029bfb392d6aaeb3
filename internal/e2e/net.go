package e2e

import (
	"net"
	"testing"
	"time"
)

// FreePort returns a TCP port on loopback that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
			t.Fatalf("%s exited before listening on %s; its output:\n%s", p.Log.Name, addr, p.Log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
