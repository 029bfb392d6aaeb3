package tunnel

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"

	"github.com/tildegate/tildegate/wire"
)

// peer is a hand-driven agent, to send the gateway what no correct agent
// would: replayed, expired and misdirected tickets.
type peer struct {
	*e2e.Peer
	t    testing.TB
	addr string
}

func dialTLS(t testing.TB, addr string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, env.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register runs the control handshake for name.
func register(t testing.TB, addr, name, password string) *peer {
	t.Helper()
	c := dialTLS(t, addr)
	t.Cleanup(func() { c.Close() })
	cs := c.ConnectionState()
	p, err := e2e.Handshake(c, &cs, addr, name, password, nil)
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	p.KeepAlive(stop)
	return &peer{Peer: p, t: t, addr: addr}
}

// nextTicket reads frames until an OPEN of a multiplexed back connection
// comes.
func (p *peer) nextTicket() []byte {
	p.t.Helper()
	f, err := p.NextOpen(5 * time.Second)
	if err != nil || f.Kind != wire.KindMux {
		p.t.Fatalf("waiting for OPEN: kind %s, %v", f.Kind, err)
	}
	return f.Ticket
}

// present opens a multiplexed back connection to /~~name with a ticket of
// p's session.
func (p *peer) present(name string, ticket []byte) (*e2e.PeerMux, error) {
	c := dialTLS(p.t, p.addr)
	cs := c.ConnectionState()
	conn, err := p.Present(c, &cs, p.addr, name, ticket, wire.KindMux)
	if err != nil {
		c.Close()
		return nil, err
	}
	m, err := p.Mux(conn, ticket)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p.t.Cleanup(func() { m.Close() })
	return m, nil
}

// presentForged presents ticket for p's session with a proof made
// without the session key.
func (p *peer) presentForged(ticket []byte) error {
	c := dialTLS(p.t, p.addr)
	defer c.Close()
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleBack, Nonce: e2e.Nonce(), Session: p.Session, Ticket: ticket,
		Proof: make([]byte, wire.ProofSize)}
	_, _, err := wire.Upgrade(c, p.addr, p.Name, hello.String())
	return err
}

// answer accepts a web stream on m, reads one HTTP request from it and
// answers it.
func answer(t testing.TB, m *e2e.PeerMux, body string) {
	t.Helper()
	c, kind, err := m.Accept(5 * time.Second)
	if err != nil || kind != wire.KindHTTP {
		t.Fatalf("waiting for a web stream: kind %s, %v", kind, err)
	}
	defer c.Close()
	if _, err := c.Write(wire.StreamAccepted); err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("reading the request on the stream: %v", err)
	}
	_, _ = io.Copy(io.Discard, req.Body)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func wantBadTicket(t testing.TB, err error, reason string) {
	t.Helper()
	var ref *wire.Refusal
	if !errors.As(err, &ref) || ref.Code != wire.CodeBadTicket || !strings.Contains(ref.Reason, reason) {
		t.Errorf("got %v, want a bad-ticket refusal saying %q", err, reason)
	}
}

// TestTickets: a ticket opens one multiplexed back connection, once, for
// its name and session, before it expires; a ticket that expires
// unanswered is replaced by a fresh one; and a request to a name whose
// agent has opened no back connection gets 504 after back_wait.
func TestTickets(t *testing.T) {
	g := e2e.StartGateway(t, env, "/~~alpha=pw-alpha#:*;\n/~~beta=pw-beta#:*;\n")
	alpha := register(t, g.Address(), "alpha", "pw-alpha")
	beta := register(t, g.Address(), "beta", "pw-beta")
	web := env.Client()

	request := func(name string) chan string {
		got := make(chan string, 1)
		go func() {
			res, err := web.Get(g.URL("/~~" + name + "/x"))
			if err != nil {
				got <- err.Error()
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			got <- fmt.Sprintf("%d %s", res.StatusCode, body)
		}()
		return got
	}

	// A registration asks for no back connection until its name's first
	// request, which asks for two multiplexed ones.
	if f, err := alpha.NextOpen(500 * time.Millisecond); err == nil {
		t.Fatalf("an OPEN before any request: %+v", f)
	}
	got := request("alpha")
	first, second := alpha.nextTicket(), alpha.nextTicket()

	// A good ticket, then the same one again.
	m, err := alpha.present("alpha", first)
	if err != nil {
		t.Fatalf("a fresh ticket was refused: %v", err)
	}
	answer(t, m, "through the tunnel")
	if r := <-got; r != "200 through the tunnel" {
		t.Errorf("request through the hand-made back connection: %q", r)
	}
	_, err = alpha.present("alpha", first)
	wantBadTicket(t, err, "already used")
	g.Log.WaitFor(2*time.Second, 0, "agent connection refused", "alpha", "the ticket was already used")

	// A ticket presented for another name, by an agent that holds that
	// name, or with a forged proof: refused, and not used up.
	_, err = alpha.present("beta", second)
	wantBadTicket(t, err, "another name")
	_, err = beta.present("alpha", second)
	wantBadTicket(t, err, "another session")
	wantBadTicket(t, alpha.presentForged(second), "wrong proof")
	if _, err = alpha.present("alpha", second); err != nil {
		t.Fatalf("the ticket was used up by refused attempts: %v", err)
	}

	// The first connection ends: the gateway asks for another one, whose
	// ticket, presented after it expired (ticket_ttl 2s), is refused; the
	// gateway then asks again. Meanwhile the second connection carries
	// the requests.
	m.Close()
	third := alpha.nextTicket()
	time.Sleep(2200 * time.Millisecond)
	_, err = alpha.present("alpha", third)
	wantBadTicket(t, err, "expired")
	if fourth := alpha.nextTicket(); string(fourth) == string(third) {
		t.Error("the gateway asked again with the expired ticket")
	}

	// beta's agent never opened a back connection: its requests wait
	// back_wait (3s), then get 504.
	if r := <-request("beta"); !strings.HasPrefix(r, "504") {
		t.Errorf("a request with no back connection: %q, want 504", r)
	}
}
