package agent

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// TestRDPReachesEntryService checks that an RDP back connection reaches
// the RDP service named by the entry's RDPPORT, not the local web service.
func TestRDPReachesEntryService(t *testing.T) {
	echo := e2e.EchoServer(t)
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	e := g.Entry("home", "pw", closedPort(t))
	addr, err := net.ResolveTCPAddr("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	e.RDP, e.RDPSet = balancebin.HostPort{Host: "127.0.0.1", Port: uint16(addr.Port)}, true
	startAgent(t, optionsFor(g), e)

	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindRDP)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Conn.Close()
	if b.Kind != wire.KindRDP {
		t.Fatalf("back connection of kind %d, want RDP", b.Kind)
	}
	b.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The first bytes of an X.224 connection request.
	hello := []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0}
	if _, err := b.Conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(hello))
	if _, err := io.ReadFull(b.R, got); err != nil {
		t.Fatalf("reading the RDP service's answer: %v", err)
	}
	if string(got) != string(hello) {
		t.Errorf("RDP service answered % x, want the echo % x", got, hello)
	}
}
