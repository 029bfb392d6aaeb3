package integration

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestRDPDefaultClientLimit: without max_conns_per_client, one address
// holds at most 100 RDP connections, sessions or sockets that never
// authenticate; max_conns_per_client off lifts the limit.
func TestRDPDefaultClientLimit(t *testing.T) {
	rdp := &rdpServer{requests: make(chan []byte, 1000)}
	rdp.addr = e2e.ServeTCP(t, rdp.serve)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	balance := writeFile(t, dir, "balance.bin", fmt.Sprintf("/~~srv1=%s RDPPORT;\n", rdp.addr))
	startGateway(t, rdpGatewayConfig(logFile, balance, ""), "caddyfile")

	var held []*rdpSession
	for range 100 {
		s := dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n"))
		s.expect(t, "confirm")
		held = append(held, s)
	}
	dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n")).expectClosed(t)
	waitLog(t, logFile, "rdp connection refused", "already 100 RDP connections from this address (max_conns_per_client)")

	held[0].Close()
	waitLog(t, logFile, "rdp connection closed", `"name":"srv1"`)
	next := dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n"))
	next.expect(t, "confirm")
	held[1].echo(t, "still here")

	if err := postConfig(rdpGatewayConfig(logFile, balance, "\t\t\t\tmax_conns_per_client off")); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		dialRDP(t, e2e.RDPConnectionRequest("/~~srv1\r\n")).expect(t, "confirm")
	}
}
