package tunnel

import (
	"bufio"
	"crypto/rand"
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

// peer speaks the protocol by hand, to send the gateway what no correct
// agent would: replayed, expired and misdirected tickets.
type peer struct {
	t          testing.TB
	addr, name string
	conn       net.Conn
	session    []byte
	sessionKey []byte
}

func dialTLS(t testing.TB, addr string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, env.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nonce() []byte {
	b := make([]byte, wire.NonceSize)
	_, _ = rand.Read(b)
	return b
}

// register runs the control handshake for name.
func register(t testing.TB, addr, name, password string) *peer {
	t.Helper()
	c := dialTLS(t, addr)
	t.Cleanup(func() { c.Close() })
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: nonce()}
	res, br, err := wire.Upgrade(c, addr, name, hello)
	if err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	challenge, err := wire.ParseChallenge(res.Header.Get(wire.HeaderChallenge))
	if err != nil {
		t.Fatal(err)
	}
	cs := c.ConnectionState()
	key := wire.DeriveKey(name, password)
	transcript := wire.NewTranscript(name, hello.Nonce, challenge.Nonce, wire.Binding(&cs))
	if err := wire.WriteFrame(c, wire.Frame{Type: wire.FrameAuth, Proof: key.AgentProof(transcript)}); err != nil {
		t.Fatal(err)
	}
	welcome, err := wire.ReadFrame(br)
	if err != nil || welcome.Type != wire.FrameWelcome {
		t.Fatalf("no welcome for %s: %+v %v", name, welcome, err)
	}
	if !wire.Equal(welcome.Proof, key.GatewayProof(transcript)) {
		t.Fatal("the gateway's proof is wrong")
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() { // stay alive, as an agent does
		for {
			select {
			case <-stop:
				return
			case <-time.After(welcome.Alive):
				if wire.WriteFrame(c, wire.Frame{Type: wire.FrameAlive}) != nil {
					return
				}
			}
		}
	}()
	return &peer{t: t, addr: addr, name: name, conn: &readerConn{Conn: c, r: br}, session: welcome.Session, sessionKey: key.SessionKey(transcript)}
}

type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// nextTicket reads frames until an OPEN comes.
func (p *peer) nextTicket() []byte {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := wire.ReadFrame(p.conn)
		if err != nil {
			p.t.Fatalf("waiting for OPEN: %v", err)
		}
		if f.Type == wire.FrameOpen {
			return f.Ticket
		}
	}
}

// present opens a back connection to /~~name with a ticket of p's session.
func (p *peer) present(name string, ticket []byte) (net.Conn, error) {
	c := dialTLS(p.t, p.addr)
	cs := c.ConnectionState()
	n := nonce()
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleBack, Nonce: n, Session: p.session, Ticket: ticket,
		Proof: wire.BackProof(p.sessionKey, p.session, ticket, n, wire.Binding(&cs))}
	_, br, err := wire.Upgrade(c, p.addr, name, hello)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &readerConn{Conn: c, r: br}, nil
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
	g.Log.WaitFor(2*time.Second, 0, "replayed ticket refused", "alpha")

	// A ticket presented for another name, even by an agent that holds
	// that name.
	got = request()
	ticket = alpha.nextTicket()
	_, err = alpha.present("beta", ticket)
	wantBadTicket(t, err, "another name")
	_, err = beta.present("alpha", ticket)
	wantBadTicket(t, err, "already used") // the attempt above used it up
	if r := <-got; !strings.HasPrefix(r, "504") {
		t.Errorf("a request whose back connection never came: %q, want 504", r)
	}

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
