package tunnel

import (
	"io"
	"net"
	"sync"
	"testing"
)

// relay is a TCP relay the test controls, standing for the network between
// an agent and the gateway.
type relay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	pairs  [][2]net.Conn // agent side, gateway side
	frozen bool
	thaw   chan struct{}
}

func newRelay(t testing.TB, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, thaw: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.pairs {
			p[0].Close()
			p[1].Close()
		}
		if r.frozen {
			close(r.thaw)
		}
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
		gw, err := net.Dial("tcp", r.target)
		if err != nil {
			agent.Close()
			continue
		}
		r.mu.Lock()
		r.pairs = append(r.pairs, [2]net.Conn{agent, gw})
		r.mu.Unlock()
		go r.pipe(gw, agent)
		go r.pipe(agent, gw)
	}
}

// pipe copies until the source fails, waiting while the relay is frozen.
func (r *relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		r.mu.Lock()
		thaw, frozen := r.thaw, r.frozen
		r.mu.Unlock()
		if frozen {
			<-thaw
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

// cutAgentSide closes the agents' side of every connection and leaves the
// gateway's side open and silent: the agent sees a drop that the gateway
// has not noticed.
func (r *relay) cutAgentSide() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p[0].Close()
	}
	r.pairs = nil
}

// freeze stops all traffic without closing anything.
func (r *relay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
}
