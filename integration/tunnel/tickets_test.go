package tunnel

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
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

// nextTicket reads frames until an OPEN comes.
func (p *peer) nextTicket() []byte {
	p.t.Helper()
	f, err := p.NextOpen(5 * time.Second)
	if err != nil {
		p.t.Fatalf("waiting for OPEN: %v", err)
	}
	return f.Ticket
}

// present opens a back connection to /~~name with a ticket of p's session.
func (p *peer) present(name string, ticket []byte) (net.Conn, error) {
	c := dialTLS(p.t, p.addr)
	cs := c.ConnectionState()
	conn, err := p.Present(c, &cs, p.addr, name, ticket, wire.KindHTTP)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
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

// answer reads one HTTP request from a back connection and answers it.
func answer(t testing.TB, c net.Conn, body string) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("reading the request on the back connection: %v", err)
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

// TestTickets: a ticket opens one back connection, once, for its name and
// session, before it expires.
func TestTickets(t *testing.T) {
	g := e2e.StartGateway(t, env, "/~~alpha=pw-alpha#:*;\n/~~beta=pw-beta#:*;\n")
	alpha := register(t, g.Address(), "alpha", "pw-alpha")
	beta := register(t, g.Address(), "beta", "pw-beta")
	web := env.Client()

	request := func() chan string {
		got := make(chan string, 1)
		go func() {
			res, err := web.Get(g.URL("/~~alpha/x"))
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

	// A good ticket, then the same one again.
	got := request()
	ticket := alpha.nextTicket()
	back, err := alpha.present("alpha", ticket)
	if err != nil {
		t.Fatalf("a fresh ticket was refused: %v", err)
	}
	answer(t, back, "through the tunnel")
	if r := <-got; r != "200 through the tunnel" {
		t.Errorf("request through the hand-made back connection: %q", r)
	}
	back.Close()
	_, err = alpha.present("alpha", ticket)
	wantBadTicket(t, err, "already used")
	g.Log.WaitFor(2*time.Second, 0, "agent connection refused", "alpha", "the ticket was already used")

	// A ticket presented for another name, by an agent that holds that
	// name, or with a forged proof: refused, and not used up.
	got = request()
	ticket = alpha.nextTicket()
	_, err = alpha.present("beta", ticket)
	wantBadTicket(t, err, "another name")
	_, err = beta.present("alpha", ticket)
	wantBadTicket(t, err, "another session")
	wantBadTicket(t, alpha.presentForged(ticket), "wrong proof")
	back, err = alpha.present("alpha", ticket)
	if err != nil {
		t.Fatalf("the ticket was used up by refused attempts: %v", err)
	}
	answer(t, back, "after the refusals")
	if r := <-got; r != "200 after the refusals" {
		t.Errorf("request after refused attempts at its ticket: %q", r)
	}
	back.Close()

	// A ticket presented after it expired (ticket_ttl 2s).
	got = request()
	ticket = alpha.nextTicket()
	time.Sleep(2200 * time.Millisecond)
	_, err = alpha.present("alpha", ticket)
	wantBadTicket(t, err, "expired")
	if r := <-got; !strings.HasPrefix(r, "504") {
		t.Errorf("a request whose back connection never came: %q, want 504", r)
	}
}
