// Package testgateway is the gateway side of the tildegate protocol, just
// enough to drive an agent over real TCP in tests: it accepts control and
// back connections, runs the proofs, hands out tickets, and shows the test
// what it saw. It is a test fixture, not a gateway: the real one is the
// Caddy module.
package testgateway

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
)

// Settings change how the gateway answers; see Gateway.Set.
type Settings struct {
	// Refuse, when set, refuses control hellos over HTTP with this code.
	Refuse wire.Code
	// RetryAfter, when set, goes with Refuse as a Retry-After header, in
	// whole seconds.
	RetryAfter time.Duration
	// RefuseAuth, when set, answers a right AUTH with REFUSE and this code.
	RefuseAuth wire.Code
	// WrongProof makes WELCOME carry a key confirmation that does not
	// match, as from a gateway that does not know the password.
	WrongProof bool
	// WrongBackProof makes the 101 of back connections carry a wrong
	// proof, as from something on the path that answers in the gateway's
	// place.
	WrongBackProof bool
	// Unbound makes the challenge say binding=none even over TLS.
	Unbound bool
	// Alive and Dead go in WELCOME.
	Alive, Dead time.Duration
}

// Gateway is a running test gateway.
type Gateway struct {
	// Addr is where it listens, on 127.0.0.1.
	Addr balancebin.HostPort
	// TLS is set when it speaks TLS.
	TLS bool
	// CAFile names a PEM file with its certificate, when TLS is set.
	CAFile string

	// Attempts gets every control hello.
	Attempts chan Attempt
	// Controls gets every registered control connection.
	Controls chan *Control
	// Backs gets every accepted back connection.
	Backs chan *Back

	t         testing.TB
	ln        net.Listener
	mu        sync.Mutex
	settings  Settings
	passwords map[string]string   // by lower-case name
	sessions  map[string]*Control // by session id
	tickets   map[string]ticket   // by ticket
	conns     map[net.Conn]bool   // to close at the end of the test
	closed    bool
	wg        sync.WaitGroup // the goroutines of connections
}

// Attempt is a control hello as the gateway received it.
type Attempt struct {
	At    time.Time
	Name  string
	Hello wire.Hello
}

// Control is a registered control connection, seen from the gateway.
type Control struct {
	Name  string
	Hello wire.Hello
	// Resumed is set when the hello asked for a session back and the
	// resume proof matched that session's key.
	Resumed bool
	Session []byte
	// Bound is set when the proofs cover the TLS session.
	Bound bool
	Conn  net.Conn
	// Frames gets every frame the agent sends after WELCOME; it is closed
	// when the connection ends.
	Frames chan wire.Frame

	key    wire.SessionKey
	g      *Gateway
	wmu    sync.Mutex
	sealer *wire.Sealer // guarded by wmu
}

// ticket is an outstanding ticket.
type ticket struct {
	c    *Control
	kind wire.Kind
}

// Back is an accepted back connection: the gateway's end of the pipe.
type Back struct {
	Name string
	Kind wire.Kind
	Conn net.Conn
	// R reads Conn.
	R *bufio.Reader
}

// New starts a gateway on loopback that knows the given passwords by name;
// with tlsOn it speaks TLS with a fresh self-signed certificate. It stops
// at the end of the test.
func New(t testing.TB, tlsOn bool, passwords map[string]string) *Gateway {
	t.Helper()
	g := &Gateway{
		TLS:       tlsOn,
		Attempts:  make(chan Attempt, 100),
		Controls:  make(chan *Control, 100),
		Backs:     make(chan *Back, 100),
		t:         t,
		settings:  Settings{Alive: 20 * time.Second, Dead: 60 * time.Second},
		passwords: make(map[string]string),
		sessions:  make(map[string]*Control),
		tickets:   make(map[string]ticket),
		conns:     make(map[net.Conn]bool),
	}
	for name, pw := range passwords {
		g.passwords[strings.ToLower(name)] = pw
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.Addr = balancebin.HostPort{Host: "127.0.0.1", Port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	if tlsOn {
		cert, caFile := Certificate(t)
		g.CAFile = caFile
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	g.ln = ln
	t.Cleanup(g.close)
	g.wg.Go(g.accept)
	return g
}

// Set changes the gateway's settings.
func (g *Gateway) Set(f func(s *Settings)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.settings)
}

// Entry returns a backbalance.bin entry that registers name with the
// gateway and exposes local (host:port; empty for the default).
func (g *Gateway) Entry(name, password, local string) balancebin.BackEntry {
	e := balancebin.BackEntry{
		Pos:      balancebin.Position{File: "backbalance.bin", Line: 1, Column: 1},
		TLS:      g.TLS,
		Name:     name,
		Password: password,
		Gateway:  g.Addr,
		Local:    balancebin.HostPort{Host: "127.0.0.1", Port: 80},
	}
	if local != "" {
		host, port, err := net.SplitHostPort(local)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil {
			g.t.Fatalf("local address %q: want host:port", local)
		}
		e.Local, e.LocalSet = balancebin.HostPort{Host: host, Port: uint16(p)}, true
	}
	return e
}

// Line returns the entry of Entry as a backbalance.bin line.
func (g *Gateway) Line(name, password, local string) string {
	return string(balancebin.FormatBack([]balancebin.BackEntry{g.Entry(name, password, local)}))
}

func (g *Gateway) close() {
	g.ln.Close()
	g.mu.Lock()
	g.closed = true
	for conn := range g.conns {
		conn.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *Gateway) accept() {
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.closed {
			conn.Close()
		} else {
			g.conns[conn] = true
			g.wg.Go(func() { g.handle(conn) })
		}
		g.mu.Unlock()
	}
}

func (g *Gateway) handle(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		conn.Close()
		return
	}
	name, ok := strings.CutPrefix(req.URL.Path, "/~~")
	if !ok || !strings.EqualFold(req.Header.Get("Upgrade"), wire.UpgradeToken) {
		g.t.Errorf("test gateway: request %s %s with Upgrade %q", req.Method, req.URL, req.Header.Get("Upgrade"))
		conn.Close()
		return
	}
	hello, err := wire.ParseHello(req.Header.Get(wire.HeaderHello))
	if err != nil {
		g.t.Errorf("test gateway: hello: %v", err)
		conn.Close()
		return
	}
	var binding []byte
	if tc, ok := conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		binding = wire.Binding(&cs)
	}
	if hello.Role == wire.RoleControl {
		g.control(conn, br, name, hello, req.Header.Get(wire.HeaderHello), binding)
	} else {
		g.back(conn, br, name, hello, binding)
	}
}

func refuseHTTP(conn net.Conn, code wire.Code, status int, reason string, extraHeader string) {
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n%s: %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), wire.HeaderRefusal, code, extraHeader, len(reason), reason)
	conn.Close()
}

func (g *Gateway) control(conn net.Conn, br *bufio.Reader, name string, hello wire.Hello, helloValue string, binding []byte) {
	g.Attempts <- Attempt{At: time.Now(), Name: name, Hello: hello}
	g.mu.Lock()
	s := g.settings
	password, known := g.passwords[strings.ToLower(name)]
	g.mu.Unlock()
	if s.Unbound {
		binding = nil
	}
	switch {
	case !known:
		refuseHTTP(conn, wire.CodeUnknownName, http.StatusNotFound, "no entry "+name, "")
		return
	case s.Refuse != 0:
		extra := ""
		if s.RetryAfter > 0 {
			extra = fmt.Sprintf("Retry-After: %d\r\n", int(s.RetryAfter/time.Second))
		}
		refuseHTTP(conn, s.Refuse, http.StatusForbidden, "refused by the test", extra)
		return
	}
	gatewayNonce := random(wire.NonceSize)
	ex := wire.NewGatewayExchange(password, wire.SessionID(name, hello.Nonce, gatewayNonce, binding))
	challenge := wire.Challenge{Version: wire.Version, Nonce: gatewayNonce, Bound: binding != nil, Share: ex.Share()}.String()
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: %s\r\n\r\n",
		wire.UpgradeToken, wire.HeaderChallenge, challenge)
	auth, err := wire.ReadFrame(br)
	if err != nil {
		conn.Close() // the agent hung up
		return
	}
	if auth.Type != wire.FrameAuth {
		g.t.Errorf("test gateway: frame of type %d instead of AUTH", auth.Type)
		conn.Close()
		return
	}
	keys, err := ex.Finish(auth.Share, helloValue, challenge)
	if err != nil || !wire.Equal(auth.Confirmation, keys.AgentConfirmation()) {
		wire.WriteFrame(conn, wire.Frame{Type: wire.FrameRefuse, Code: wire.CodeWrongPassword, Reason: "wrong password"})
		conn.Close()
		return
	}
	if s.RefuseAuth != 0 {
		wire.WriteFrame(conn, wire.Frame{Type: wire.FrameRefuse, Code: s.RefuseAuth, Reason: "refused by the test"})
		conn.Close()
		return
	}
	c := &Control{Name: name, Hello: hello, Bound: binding != nil, Conn: conn, Frames: make(chan wire.Frame, 100), g: g,
		key: keys.Session, sealer: wire.NewSealer(keys.Session, false)}
	if hello.Resume != nil {
		g.mu.Lock()
		old := g.sessions[string(hello.Resume)]
		g.mu.Unlock()
		if old != nil && auth.ResumeProof != nil && wire.Equal(auth.ResumeProof, keys.ResumeProof(old.key)) {
			c.Resumed = true
			old.Send(wire.Frame{Type: wire.FrameClose, Code: wire.CodeResumedElsewhere})
			old.Conn.Close()
		}
	}
	c.Session = random(wire.SessionSize)
	confirmation := keys.GatewayConfirmation()
	if s.WrongProof {
		confirmation = random(wire.ConfirmationSize)
	}
	g.mu.Lock()
	g.sessions[string(c.Session)] = c
	g.mu.Unlock()
	conn.SetDeadline(time.Time{})
	c.Send(wire.Frame{Type: wire.FrameWelcome, Confirmation: confirmation, Session: c.Session, Alive: s.Alive, Dead: s.Dead})
	g.Controls <- c
	defer close(c.Frames)
	opener := wire.NewOpener(keys.Session, true)
	for {
		f, err := opener.ReadFrame(br)
		if err != nil {
			return
		}
		c.Frames <- f
	}
}

// Send writes a tagged frame to the agent.
func (c *Control) Send(f wire.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := c.sealer.Append(nil, f)
	if err != nil {
		c.g.t.Errorf("test gateway: %v", err)
		return
	}
	c.Conn.Write(b)
}

// Inject writes a frame with a tag made without the session key, as
// something on the path would.
func (c *Control) Inject(f wire.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := wire.NewSealer(wire.SessionKey(random(wire.SessionKeySize)), false).Append(nil, f)
	if err != nil {
		c.g.t.Errorf("test gateway: %v", err)
		return
	}
	c.Conn.Write(b)
}

// SendPayload writes a tagged frame of any type, with its payload.
func (c *Control) SendPayload(t wire.FrameType, payload []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.Write(c.sealer.AppendPayload(nil, t, payload))
}

// Open sends OPEN with a fresh ticket.
func (c *Control) Open(kind wire.Kind) {
	tk := random(wire.TicketSize)
	c.g.mu.Lock()
	c.g.tickets[string(tk)] = ticket{c: c, kind: kind}
	c.g.mu.Unlock()
	c.Send(wire.Frame{Type: wire.FrameOpen, Ticket: tk, Kind: kind})
}

func (g *Gateway) back(conn net.Conn, br *bufio.Reader, name string, hello wire.Hello, binding []byte) {
	g.mu.Lock()
	tk, ok := g.tickets[string(hello.Ticket)]
	delete(g.tickets, string(hello.Ticket))
	g.mu.Unlock()
	if !ok || !strings.EqualFold(tk.c.Name, name) || string(tk.c.Session) != string(hello.Session) {
		g.t.Errorf("test gateway: back connection with an unknown ticket")
		refuseHTTP(conn, wire.CodeBadTicket, http.StatusForbidden, "unknown ticket", "")
		return
	}
	if !tk.c.Bound {
		binding = nil
	}
	if !wire.Equal(hello.Proof, tk.c.key.BackProof(hello.Session, hello.Ticket, tk.kind, hello.Nonce, binding)) {
		g.t.Errorf("test gateway: back connection with a wrong proof")
		refuseHTTP(conn, wire.CodeBadTicket, http.StatusForbidden, "wrong proof", "")
		return
	}
	proof := tk.c.key.BackAcceptProof(hello.Session, hello.Ticket, hello.Nonce, binding)
	g.mu.Lock()
	if g.settings.WrongBackProof {
		proof = random(wire.ProofSize)
	}
	g.mu.Unlock()
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: %s\r\n\r\n",
		wire.UpgradeToken, wire.HeaderProof, wire.EncodeValue(proof))
	conn.SetDeadline(time.Time{})
	g.Backs <- &Back{Name: name, Kind: tk.kind, Conn: conn, R: br}
}

// Request sends an HTTP request through the back connection, as the
// gateway's reverse proxy does, and returns the answer's status and body.
func (b *Back) Request(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	b.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(b.Conn, "%s %s HTTP/1.1\r\nHost: local\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	res, err := http.ReadResponse(b.R, nil)
	if err != nil {
		t.Fatalf("reading the answer through the back connection: %v", err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	if _, err := bufio.NewReader(res.Body).WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, sb.String()
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Receive waits up to 10 seconds for a value from ch.
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Nothing checks that ch gets nothing for d.
func Nothing[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(d):
	}
}
