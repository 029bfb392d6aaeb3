package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// Peer is an agent's side of the protocol driven by hand, so that tests
// can send the gateway what no correct agent would: other passwords,
// replayed tickets, forged frames. Its handshake is the protocol's, step
// by step.
type Peer struct {
	Name    string
	Session []byte
	Key     wire.SessionKey
	// Bound is set when the gateway bound the handshake to TLS.
	Bound bool
	// Alive is the gateway's alive interval.
	Alive time.Duration

	conn   net.Conn // reads go through the handshake's buffered reader
	wmu    sync.Mutex
	sealer *wire.Sealer
	opener *wire.Opener
}

// Nonce returns fresh random bytes for a nonce.
func Nonce() []byte {
	b := make([]byte, wire.NonceSize)
	_, _ = rand.Read(b)
	return b
}

// Handshake registers name with password on conn (with TLS state cs, nil
// without TLS), resuming previous when it is not nil. host is the Host of
// the upgrade request. A refusal comes back as a *wire.Refusal.
func Handshake(conn net.Conn, cs *tls.ConnectionState, host, name, password string, previous *Peer) (*Peer, error) {
	g := wire.Registering{Host: host, Name: name, Password: password,
		Binding: func(bound bool) ([]byte, error) {
			if bound {
				return wire.Binding(cs), nil
			}
			return nil, nil
		}}
	if previous != nil {
		g.Resume = &wire.Resumption{Session: previous.Session, Key: previous.Key}
	}
	reg, err := g.Run(conn)
	if err != nil {
		return nil, err
	}
	return &Peer{
		Name: name, Session: reg.Session, Key: reg.Key, Bound: reg.Bound, Alive: reg.Alive,
		conn:   pipe.ReaderConn(conn, reg.Reader),
		sealer: wire.NewSealer(reg.Key, true),
		opener: reg.Opener,
	}, nil
}

// Conn is the control connection.
func (p *Peer) Conn() net.Conn { return p.conn }

// Send writes a tagged frame.
func (p *Peer) Send(f wire.Frame) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	b, err := p.sealer.Append(nil, f)
	if err != nil {
		return err
	}
	_, err = p.conn.Write(b)
	return err
}

// KeepAlive sends ALIVE frames, as an agent does, until stop closes.
func (p *Peer) KeepAlive(stop <-chan struct{}) {
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(p.Alive):
				if p.Send(wire.Frame{Type: wire.FrameAlive}) != nil {
					return
				}
			}
		}
	}()
}

// NextOpen reads frames, checking their tags, until an OPEN comes.
func (p *Peer) NextOpen(within time.Duration) (wire.Frame, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(within))
	for {
		f, err := p.opener.ReadFrame(p.conn)
		if err != nil {
			return wire.Frame{}, err
		}
		if f.Type == wire.FrameOpen {
			return f, nil
		}
	}
}

// BackHello is the hello of a back connection with TLS state cs that
// presents ticket for kind.
func (p *Peer) BackHello(cs *tls.ConnectionState, ticket []byte, kind wire.Kind) wire.Hello {
	return wire.BackHello(p.Session, p.Key, ticket, kind, p.binding(cs))
}

// binding is the channel binding of a back connection with TLS state cs.
func (p *Peer) binding(cs *tls.ConnectionState) []byte {
	if p.Bound {
		return wire.Binding(cs)
	}
	return nil
}

// Present opens a back connection to /~~name on conn that presents
// ticket for kind, and checks the gateway's proof in its answer.
func (p *Peer) Present(conn net.Conn, cs *tls.ConnectionState, host, name string, ticket []byte, kind wire.Kind) (net.Conn, error) {
	br, err := wire.PresentTicket(conn, host, name, p.Key, p.BackHello(cs, ticket, kind), p.binding(cs))
	if err != nil {
		return nil, err
	}
	return pipe.ReaderConn(conn, br), nil
}

// PeerMux is the agent's side of a multiplexed back connection driven by
// hand: it accepts the gateway's streams and checks their openings.
type PeerMux struct {
	session *mux.Session
	key     wire.SessionKey
	ticket  []byte
}

// Mux starts the agent's side of the multiplexer on conn, a back
// connection that presented ticket (see Present).
func (p *Peer) Mux(conn net.Conn, ticket []byte) (*PeerMux, error) {
	s := mux.Agent(conn, nil, zap.NewNop(), p.Alive)
	return &PeerMux{session: s, key: p.Key, ticket: ticket}, nil
}

// Accept waits up to within for the gateway's next stream and returns it
// with the kind its opening names, once its tag is checked. The caller
// answers it with wire.StreamAccepted or wire.StreamRefused.
func (m *PeerMux) Accept(within time.Duration) (net.Conn, wire.Kind, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	s, err := m.session.Accept(ctx)
	if err != nil {
		return nil, 0, err
	}
	_ = s.SetReadDeadline(time.Now().Add(within))
	kind, err := wire.ReadStreamOpen(s, m.key, m.ticket, s.StreamID())
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	_ = s.SetReadDeadline(time.Time{})
	return s, kind, nil
}

// Close ends the multiplexed connection.
func (m *PeerMux) Close() error { return m.session.Close() }
