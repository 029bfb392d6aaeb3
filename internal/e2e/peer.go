package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tildegate/tildegate/wire"
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
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: Nonce()}
	if previous != nil {
		hello.Resume = previous.Session
		hello.Proof = previous.Key.ResumeHelloProof(previous.Session, hello.Nonce)
	}
	helloValue := hello.String()
	res, br, err := wire.Upgrade(conn, host, name, helloValue)
	if err != nil {
		return nil, err
	}
	challengeValue := res.Header.Get(wire.HeaderChallenge)
	ch, err := wire.ParseChallenge(challengeValue)
	if err != nil {
		return nil, err
	}
	var binding []byte
	if ch.Bound {
		binding = wire.Binding(cs)
	}
	ex := wire.NewAgentExchange(password, wire.SessionID(name, hello.Nonce, ch.Nonce, binding))
	keys, err := ex.Finish(ch.Share, helloValue, challengeValue)
	if err != nil {
		return nil, err
	}
	auth := wire.Frame{Type: wire.FrameAuth, Share: ex.Share(), Confirmation: keys.AgentConfirmation()}
	if previous != nil {
		auth.ResumeProof = keys.ResumeProof(previous.Key)
	}
	if err := wire.WriteFrame(conn, auth); err != nil {
		return nil, err
	}
	opener := wire.NewOpener(keys.Session, false)
	f, err := opener.ReadWelcome(br)
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the WELCOME: %w", err)
	case f.Type == wire.FrameRefuse || f.Type == wire.FrameClose:
		return nil, &wire.Refusal{Code: f.Code, Reason: f.Reason}
	case f.Type != wire.FrameWelcome:
		return nil, fmt.Errorf("frame of type %d instead of WELCOME", f.Type)
	case !wire.Equal(f.Confirmation, keys.GatewayConfirmation()):
		return nil, errors.New("the gateway failed key confirmation")
	}
	return &Peer{
		Name: name, Session: f.Session, Key: keys.Session, Bound: ch.Bound, Alive: f.Alive,
		conn:   &readerConn{Conn: conn, r: br},
		sealer: wire.NewSealer(keys.Session, true),
		opener: opener,
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
	var binding []byte
	if p.Bound {
		binding = wire.Binding(cs)
	}
	n := Nonce()
	return wire.Hello{Version: wire.Version, Role: wire.RoleBack, Nonce: n, Session: p.Session, Ticket: ticket,
		Proof: p.Key.BackProof(p.Session, ticket, kind, n, binding)}
}

// Present opens a back connection to /~~name on conn that presents
// ticket for kind, and checks the gateway's proof in its answer.
func (p *Peer) Present(conn net.Conn, cs *tls.ConnectionState, host, name string, ticket []byte, kind wire.Kind) (net.Conn, error) {
	hello := p.BackHello(cs, ticket, kind)
	res, br, err := wire.Upgrade(conn, host, name, hello.String())
	if err != nil {
		return nil, err
	}
	var binding []byte
	if p.Bound {
		binding = wire.Binding(cs)
	}
	proof, err := wire.DecodeValue(res.Header.Get(wire.HeaderProof), wire.ProofSize)
	if err != nil || !wire.Equal(proof, p.Key.BackAcceptProof(p.Session, ticket, hello.Nonce, binding)) {
		return nil, errors.New("the gateway's answer lacks the session's proof")
	}
	return &readerConn{Conn: conn, r: br}, nil
}

// readerConn reads through the reader that holds what was read past the
// 101.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
