package attack

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// rdpRequest is an X.224 Connection Request whose mstshash cookie names
// /~~name, as an RDP client sends it.
func rdpRequest(name string) []byte {
	line := "Cookie: mstshash=/~~" + name + "\r\n"
	neg := []byte{0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00}
	n := 11 + len(line) + len(neg)
	p := []byte{3, 0, byte(n >> 8), byte(n), byte(n - 5), 0xe0, 0, 0, 0, 0, 0}
	return append(append(p, line...), neg...)
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestTicketKindAndBadTickets: a hand-driven agent holds a name, and the
// gateway asks it for a multiplexed back connection. Must hold: presenting
// the ticket with a proof for another kind (the web's) is refused
// bad-ticket and does not use it up; the right kind then opens the
// connection, on which a native RDP client's session arrives as a stream
// whose opening says RDP, carrying the client's request; and back hellos
// with random tickets from 50 addresses never lock those addresses out:
// afterwards a control handshake from each of them succeeds, and a real
// agent from one of them registers.
func TestTicketKindAndBadTickets(t *testing.T) {
	t.Parallel()
	var balance strings.Builder
	balance.WriteString("/~~tk=tk-pw#:*;\n/~~tkagent=tka-pw#:*;\n")
	for i := range 50 {
		fmt.Fprintf(&balance, "/~~t%d=t-pw#:*;\n", i)
	}
	g := e2e.StartGateway(t, env, balance.String())
	c, cs := dialTLSFrom(t, "127.0.0.1", g.Address())
	p, err := e2e.Handshake(c, cs, g.Address(), "tk", "tk-pw", nil)
	if err != nil {
		t.Fatalf("registering tk: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	p.KeepAlive(stop)

	// A native RDP client's session asks for the multiplexed back
	// connections, which a registration has none of before its first.
	client := dialFrom(t, "127.0.0.1", g.Address()) // native RDP, before TLS
	if _, err := client.Write(rdpRequest("tk")); err != nil {
		t.Fatal(err)
	}
	open, err := p.NextOpen(10 * time.Second)
	if err != nil || open.Kind != wire.KindMux {
		t.Fatalf("waiting for an OPEN of a multiplexed back connection: kind %s, %v", open.Kind, err)
	}
	present := func(kind wire.Kind) (net.Conn, error) {
		bc, bcs := dialTLSFrom(t, "127.0.0.1", g.Address())
		return p.Present(bc, bcs, g.Address(), "tk", open.Ticket, kind)
	}
	_, err = present(wire.KindHTTP)
	var ref *wire.Refusal
	if !errors.As(err, &ref) || ref.Code != wire.CodeBadTicket {
		t.Errorf("a mux ticket with a web proof: %v, want bad-ticket", err)
	}
	back, err := present(wire.KindMux)
	if err != nil {
		t.Fatalf("the ticket with its own kind after a refused web proof: %v", err)
	}
	m, err := p.Mux(back, open.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	stream, kind, err := m.Accept(10 * time.Second)
	if err != nil || kind != wire.KindRDP {
		t.Fatalf("waiting for the RDP client's stream: kind %s, %v", kind, err)
	}
	if _, err := stream.Write(wire.StreamAccepted); err != nil {
		t.Fatal(err)
	}
	_ = stream.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The gateway passes the Connection Request on without its cookie.
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(stream, hdr); err != nil || hdr[0] != 3 {
		t.Errorf("the RDP client's request on the stream: % x, %v", hdr, err)
	} else if _, err := io.ReadFull(stream, make([]byte, int(hdr[2])<<8|int(hdr[3])-4)); err != nil {
		t.Errorf("the rest of the RDP client's request on the stream: %v", err)
	}
	stream.Close()

	// Random tickets from 50 addresses, for a held name and free ones.
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := map[string]int{}
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, name := range []string{"tk", "tkagent", fmt.Sprintf("t%d", i), "tk", "tk"} {
				hello := wire.Hello{Version: wire.Version, Role: wire.RoleBack, Nonce: e2e.Nonce(),
					Session: random(wire.SessionSize), Ticket: random(wire.TicketSize), Proof: random(wire.ProofSize)}
				if j == 0 {
					hello.Session = p.Session // the real session, sniffed
				}
				conn := dialFrom(t, loopback(9, i), g.PlainAddress())
				a, _ := upgrade(conn, request(g.PlainAddress(), "/~~"+name, wire.UpgradeToken, hello.String()))
				conn.Close()
				mu.Lock()
				refused[a.String()]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for what, n := range refused {
		if !strings.HasPrefix(what, "403 bad-ticket") {
			t.Errorf("%d random back hellos got %s, want 403 bad-ticket", n, what)
		}
	}
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("tkagent", "tka-pw", g.Address(), e2e.EchoServer(t)), "-bind", loopback(9, 0))
	answers := storm(50,
		func(i int) net.Conn { return dialFrom(t, loopback(9, i), g.PlainAddress()) },
		func(i int, c net.Conn) answer { return control(c, nil, fmt.Sprintf("t%d", i), "t-pw", nil) })
	for i, a := range answers {
		if !a.Welcome {
			t.Errorf("a control handshake from %s after its bad tickets: %s", loopback(9, i), a)
		}
	}
	agent.Log.WaitFor(20*time.Second, 0, "registered", "tkagent")
}
