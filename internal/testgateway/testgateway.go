// Package testgateway is the gateway side of the tildegate protocol, just
// enough to drive an agent over real TCP in tests: it accepts control and
// multiplexed back connections, runs the proofs, hands out tickets, opens
// streams as the test asks, and shows the test what it saw. It is a test fixture, not a gateway: the real one is the
// Caddy module.
package testgateway

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
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
	// Instance, when set, goes in the challenge as the gateway's instance.
	Instance string
	// OpenWithWelcome sends an OPEN for a multiplexed back connection in
	// the same write as the WELCOME, as a gateway with a request waiting
	// for the name may.
	OpenWithWelcome bool
}

// Gateway is a running test gateway.
type Gateway struct {
	// Addr is where it listens, on 127.0.0.1 (or, in a Cluster, another
	// loopback address).
	Addr balancebin.HostPort
	// TLS is set when it speaks TLS.
	TLS bool
	// CAFile names a PEM file with its certificate, when TLS is set.
	CAFile string

	// Attempts gets every control hello.
	Attempts chan Attempt
	// Controls gets every registered control connection.
	Controls chan *Control
	// Backs gets every accepted back connection, multiplexed.
	Backs chan *Back

	t         testing.TB
	ln        net.Listener
	mu        sync.Mutex
	settings  Settings
	passwords map[string]string   // by lower-case name
	sessions  map[string]*Control // by session id
	tickets   map[string]ticket   // by ticket
	conns     map[net.Conn]bool   // to close at the end of the test
	muxes     []*mux.Session      // likewise
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

// Back is an accepted multiplexed back connection: the gateway's end of
// it, on which the test opens streams as the gateway does for sessions.
type Back struct {
	Name string
	// Ticket is the ticket the agent presented, and Key the session key:
	// with a stream's id they make the stream's opening.
	Ticket []byte
	Key    wire.SessionKey
	// Session is the gateway's side of the multiplexer.
	Session *mux.Session

	conn *frameConn
}

// streamTimeout bounds a stream's opening and its answer, and the
// exchanges of Request.
const streamTimeout = 10 * time.Second

// New starts a gateway on loopback that knows the given passwords by name;
// with tlsOn it speaks TLS with a fresh self-signed certificate. It stops
// at the end of the test.
func New(t testing.TB, tlsOn bool, passwords map[string]string) *Gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cert *tls.Certificate
	caFile := ""
	if tlsOn {
		c, f := Certificate(t)
		cert, caFile = &c, f
	}
	return start(t, ln, cert, caFile, passwords)
}

// ClusterHost is the name of a Cluster's gateways in their certificate.
const ClusterHost = "gateway.test"

// Cluster starts n gateways (at most 250) that listen on one port at
// 127.0.0.2, 127.0.0.3 and so on, as the gateways behind one name of
// round-robin DNS do, each with the instance "gw-1", "gw-2"... With tlsOn
// they share a certificate for ClusterHost and those addresses, in the
// CAFile of each. They stop at the end of the test.
func Cluster(t testing.TB, n int, tlsOn bool, passwords map[string]string) []*Gateway {
	t.Helper()
	var ips []net.IP
	for i := range n {
		ips = append(ips, net.IPv4(127, 0, 0, byte(2+i)))
	}
	var cert *tls.Certificate
	caFile := ""
	if tlsOn {
		c, f := certificate(t, []string{ClusterHost}, ips)
		cert, caFile = &c, f
	}
	for attempt := 0; ; attempt++ {
		lns, err := listenAll(ips)
		if err != nil {
			if attempt < 10 {
				continue // the port was free at the first address only
			}
			t.Fatal(err)
		}
		gs := make([]*Gateway, n)
		for i, ln := range lns {
			gs[i] = start(t, ln, cert, caFile, passwords)
			gs[i].Set(func(s *Settings) { s.Instance = fmt.Sprintf("gw-%d", i+1) })
		}
		return gs
	}
}

// listenAll listens on one port, which the first listener picks, at
// every address of ips.
func listenAll(ips []net.IP) ([]net.Listener, error) {
	var lns []net.Listener
	port := 0
	for _, ip := range ips {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		lns = append(lns, ln)
	}
	return lns, nil
}

// start runs a gateway on ln, with TLS when cert is set.
func start(t testing.TB, ln net.Listener, cert *tls.Certificate, caFile string, passwords map[string]string) *Gateway {
	g := &Gateway{
		TLS:       cert != nil,
		CAFile:    caFile,
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
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	g.Addr = balancebin.HostPort{Host: addr.Addr().String(), Port: addr.Port()}
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
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

// Stop closes the gateway's listener and every connection it holds, as a
// gateway that goes down does: agents can no longer reach it.
func (g *Gateway) Stop() { g.close() }

func (g *Gateway) close() {
	g.ln.Close()
	g.mu.Lock()
	g.closed = true
	for _, s := range g.muxes {
		s.Close()
	}
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
	challenge := wire.Challenge{Version: wire.Version, Nonce: gatewayNonce, Bound: binding != nil, Share: ex.Share(),
		Instance: s.Instance}.String()
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
	welcome := wire.Frame{Type: wire.FrameWelcome, Confirmation: confirmation, Session: c.Session, Alive: s.Alive, Dead: s.Dead}
	if s.OpenWithWelcome {
		c.Send(welcome, c.openFrame(wire.KindMux))
	} else {
		c.Send(welcome)
	}
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

// Send writes tagged frames to the agent, in one write.
func (c *Control) Send(frames ...wire.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var b []byte
	for _, f := range frames {
		var err error
		if b, err = c.sealer.Append(b, f); err != nil {
			c.g.t.Errorf("test gateway: %v", err)
			return
		}
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

// Open sends OPEN with a fresh ticket of kind and returns the ticket. An
// agent answers wire.KindMux with a multiplexed back connection; the test
// may send other kinds, which an agent must not answer.
func (c *Control) Open(kind wire.Kind) []byte {
	f := c.openFrame(kind)
	c.Send(f)
	return f.Ticket
}

// openFrame returns an OPEN of kind with a new ticket, which the gateway
// now expects.
func (c *Control) openFrame(kind wire.Kind) wire.Frame {
	tk := random(wire.TicketSize)
	c.g.mu.Lock()
	c.g.tickets[string(tk)] = ticket{c: c, kind: kind}
	c.g.mu.Unlock()
	return wire.Frame{Type: wire.FrameOpen, Ticket: tk, Kind: kind}
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
	if tk.kind != wire.KindMux {
		g.t.Errorf("test gateway: back connection for a ticket of kind %s: back connections are multiplexed", tk.kind)
		refuseHTTP(conn, wire.CodeBadTicket, http.StatusForbidden, "not a ticket for a back connection", "")
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
	fc := &frameConn{Conn: conn, r: br}
	fc.boundary = sync.NewCond(&fc.mu)
	session := mux.Gateway(fc, zap.NewNop())
	g.mu.Lock()
	if g.closed {
		session.Close()
	}
	g.muxes = append(g.muxes, session)
	g.mu.Unlock()
	g.Backs <- &Back{Name: name, Ticket: hello.Ticket, Key: tk.c.key, Session: session, conn: fc}
}

// Stream opens a stream of kind as the gateway does for a session: it
// writes the stream's opening and reads the agent's answer. It returns
// the stream once the agent has connected it to its local service, a
// *wire.Refusal when the agent refused it, and any other error when the
// stream failed. It does not stop the test, so that goroutines may call
// it; the stream is closed at the end of the test at the latest.
func (b *Back) Stream(t testing.TB, kind wire.Kind) (net.Conn, error) {
	t.Helper()
	s, err := b.Open(t, func(id uint32) []byte { return wire.StreamOpen(b.Key, b.Ticket, id, kind) })
	if err != nil {
		return nil, err
	}
	s.SetReadDeadline(time.Now().Add(streamTimeout))
	if err := wire.ReadStreamAnswer(s); err != nil {
		s.Close()
		return nil, err
	}
	s.SetReadDeadline(time.Time{})
	return s, nil
}

// Open opens a stream and writes opening(id) on it, id being the stream's
// id, without reading the answer: for openings that a gateway would not
// write. The stream is closed at the end of the test at the latest.
func (b *Back) Open(t testing.TB, opening func(id uint32) []byte) (*mux.Stream, error) {
	t.Helper()
	s, err := b.Session.Open(opening)
	if err != nil {
		return nil, fmt.Errorf("opening a stream: %w", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// Request sends an HTTP request on a fresh web stream, as the gateway's
// reverse proxy does, and returns the answer's status and body.
func (b *Back) Request(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	s, err := b.Stream(t, wire.KindHTTP)
	if err != nil {
		t.Fatalf("opening a web stream: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(streamTimeout))
	fmt.Fprintf(s, "%s %s HTTP/1.1\r\nHost: local\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	res, err := http.ReadResponse(bufio.NewReader(s), nil)
	if err != nil {
		t.Fatalf("reading the answer through the stream: %v", err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(answer)
}

// Inject writes, between the multiplexer's frames, the frames that open a
// stream of the given id with opening as its first bytes, as something on
// the path that replays or forges streams would: the multiplexer itself
// only opens streams under fresh ids.
func (b *Back) Inject(id uint32, opening []byte) error {
	// yamux frames: a 12-byte header (version 0, type, flags, stream id,
	// length), then for a data frame its length of bytes. A window update
	// with the SYN flag opens the stream.
	const typeData, typeWindowUpdate, flagSYN = 0, 1, 1
	frame := func(typ byte, flags uint16, length uint32) []byte {
		h := []byte{0, typ}
		h = binary.BigEndian.AppendUint16(h, flags)
		h = binary.BigEndian.AppendUint32(h, id)
		return binary.BigEndian.AppendUint32(h, length)
	}
	raw := append(frame(typeWindowUpdate, flagSYN, 0), frame(typeData, 0, uint32(len(opening)))...)
	return b.conn.inject(append(raw, opening...))
}

// Close closes the back connection with all its streams.
func (b *Back) Close() error { return b.Session.Close() }

// frameConn is the connection under the gateway's multiplexer. It reads
// what the upgrade's reader holds first, and follows the frames in what
// the multiplexer writes (a write may hold several frames, or part of
// one), so that inject can slip whole frames in between.
type frameConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	boundary *sync.Cond // signalled when no frame is half written
	header   []byte     // the bytes of the current frame's header written so far
	body     int        // bytes of the current frame's body still to write
}

func (c *frameConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	const headerSize, typeData = 12, 0
	for rest := p; len(rest) > 0; {
		if c.body > 0 {
			n := min(c.body, len(rest))
			c.body -= n
			rest = rest[n:]
			continue
		}
		n := min(headerSize-len(c.header), len(rest))
		c.header = append(c.header, rest[:n]...)
		rest = rest[n:]
		if len(c.header) == headerSize {
			if c.header[1] == typeData {
				c.body = int(binary.BigEndian.Uint32(c.header[8:12]))
			}
			c.header = c.header[:0]
		}
	}
	n, err := c.Conn.Write(p)
	if c.body == 0 && len(c.header) == 0 {
		c.boundary.Broadcast()
	}
	return n, err
}

// inject writes raw once no frame is half written.
func (c *frameConn) inject(raw []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.body > 0 || len(c.header) > 0 {
		c.boundary.Wait()
	}
	_, err := c.Conn.Write(raw)
	return err
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
