package agent

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// TestRDPReachesEntryService checks that an RDP stream reaches the RDP
// service named by the entry's RDPPORT, and a web stream on the same back
// connection the local web service.
func TestRDPReachesEntryService(t *testing.T) {
	echo := e2e.EchoServer(t)
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	web := closedPort(t)
	e := g.Entry("home", "pw", web)
	addr, err := net.ResolveTCPAddr("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	e.RDP, e.RDPSet = balancebin.HostPort{Host: "127.0.0.1", Port: uint16(addr.Port)}, true
	startAgent(t, optionsFor(g), e)

	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	s, err := b.Stream(t, wire.KindRDP)
	if err != nil {
		t.Fatalf("RDP stream: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	// The first bytes of an X.224 connection request.
	hello := []byte{0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0}
	if _, err := s.Write(hello); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(hello))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("reading the RDP service's answer: %v", err)
	}
	if string(got) != string(hello) {
		t.Errorf("RDP service answered % x, want the echo % x", got, hello)
	}
	// The web service is down: a web stream is refused, the RDP one goes on.
	var ref *wire.Refusal
	if _, err := b.Stream(t, wire.KindHTTP); !errors.As(err, &ref) || !strings.Contains(ref.Reason, web) {
		t.Errorf("web stream: %v; want a refusal naming the web service %s", err, web)
	}
	if _, err := s.Write(hello); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, got); err != nil || string(got) != string(hello) {
		t.Errorf("RDP stream after the web one: % x, %v", got, err)
	}
}
