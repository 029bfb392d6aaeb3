package attack

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/testgateway"
)

// relay stands for the network between agents and the gateway, in the
// attacker's hands: it records every byte of every connection, can inject
// bytes either way, can hold new connections back and cut the ones it has.
// With tls set it is a man in the middle: it ends the agent's TLS with a
// certificate of its own and opens its own TLS to the gateway, so that it
// sees and records the plain bytes.
type relay struct {
	t      testing.TB
	ln     net.Listener
	target string
	from   string // local address to dial the gateway from; "" for any
	tls    bool

	mu      sync.Mutex
	conns   []*relayed
	holding chan struct{} // not nil while new connections are held back
}

// relayed is one connection through the relay.
type relayed struct {
	agent, gateway net.Conn
	// up is what the agent sent, down what the gateway sent; upMu and
	// downMu are held for each write, so that an injection lands between
	// whole writes.
	upMu, downMu sync.Mutex
	up, down     bytes.Buffer
}

func newRelay(t testing.TB, target, from string, mitm bool) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if mitm {
		cert, _ := testgateway.Certificate(t) // a certificate nobody trusts
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	r := &relay{t: t, ln: ln, target: target, from: from, tls: mitm}
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		r.release()
	})
	go r.serve()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		agent, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.connect(agent)
	}
}

// connect waits while connections are held back, then dials the gateway
// and copies both ways, recording.
func (r *relay) connect(agent net.Conn) {
	r.mu.Lock()
	hold := r.holding
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if r.from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(r.from)}
	}
	var gw net.Conn
	var err error
	if r.tls {
		// The man in the middle trusts anything: it only wants the bytes.
		gw, err = tls.DialWithDialer(&d, "tcp", r.target, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		gw, err = d.Dial("tcp", r.target)
	}
	if err != nil {
		agent.Close()
		return
	}
	c := &relayed{agent: agent, gateway: gw}
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
	go c.pipe(gw, agent, &c.upMu, &c.up)
	go c.pipe(agent, gw, &c.downMu, &c.down)
}

func (c *relayed) pipe(dst, src net.Conn, mu *sync.Mutex, rec *bytes.Buffer) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			mu.Lock()
			rec.Write(buf[:n])
			_, werr := dst.Write(buf[:n])
			mu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// record returns copies of what the agent and the gateway sent so far.
func (c *relayed) record() (up, down []byte) {
	c.upMu.Lock()
	up = bytes.Clone(c.up.Bytes())
	c.upMu.Unlock()
	c.downMu.Lock()
	down = bytes.Clone(c.down.Bytes())
	c.downMu.Unlock()
	return up, down
}

// role returns "control" or "back" from the connection's hello, or "".
func (c *relayed) role() string {
	up, _ := c.record()
	head, _, _ := bytes.Cut(up, []byte("\r\n\r\n"))
	switch {
	case bytes.Contains(head, []byte("role=control")):
		return "control"
	case bytes.Contains(head, []byte("role=back")):
		return "back"
	}
	return ""
}

// toAgent writes b to the agent as if the gateway had sent it.
func (c *relayed) toAgent(b []byte) error {
	c.downMu.Lock()
	defer c.downMu.Unlock()
	_, err := c.agent.Write(b)
	return err
}

// toGateway writes b to the gateway as if the agent had sent it.
func (c *relayed) toGateway(b []byte) error {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	_, err := c.gateway.Write(b)
	return err
}

// all returns the connections so far, oldest first.
func (r *relay) all() []*relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*relayed(nil), r.conns...)
}

// count returns how many connections of role came through so far.
func (r *relay) count(role string) int {
	n := 0
	for _, c := range r.all() {
		if c.role() == role {
			n++
		}
	}
	return n
}

// last returns the latest connection of role, or nil.
func (r *relay) last(role string) *relayed {
	all := r.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].role() == role {
			return all[i]
		}
	}
	return nil
}

// hold makes new connections wait until release.
func (r *relay) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holding == nil {
		r.holding = make(chan struct{})
	}
}

// release lets held connections through.
func (r *relay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holding != nil {
		close(r.holding)
		r.holding = nil
	}
}

// cut closes both sides of every connection so far.
func (r *relay) cut() {
	for _, c := range r.all() {
		c.agent.Close()
		c.gateway.Close()
	}
}
