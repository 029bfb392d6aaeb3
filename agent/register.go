package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// Defaults of the liveness settings, for a WELCOME that gives none.
const (
	defaultAlive = 20 * time.Second
	defaultDead  = 60 * time.Second
)

// errKeyConfirmation is a handshake that ended without the gateway's valid
// key confirmation once the agent had sent its own: whoever answered got
// one online guess at the password. Either the password differs from the
// gateway's, or the agent is not talking to the gateway (a fake one, or a
// man in the middle); the agent cannot tell which.
var errKeyConfirmation = errors.New("no valid key confirmation from the gateway after the agent's: " +
	"either the password differs from the gateway's, or a fake gateway or a man in the middle answered")

// session is what a registration gives: the gateway's name for it, the key
// both ends derived, and the settings that go with it.
type session struct {
	id  []byte
	key wire.SessionKey
	// bound is set when the gateway binds proofs to the TLS session, which
	// back connections must then do too.
	bound       bool
	alive, dead time.Duration
}

// control is a registered control connection.
type control struct {
	conn net.Conn
	// r reads the connection; it may hold bytes read past the 101.
	r    *bufio.Reader
	sess *session
	// opener checks the tags of the gateway's frames, from the WELCOME on.
	opener *wire.Opener
}

// register opens a control connection for the runner's entry and runs the
// handshake of docs/protocol.md section 3. When resume is set it asks for
// that session back. A refusal comes back as a *wire.Refusal.
func (r *runner) register(ctx context.Context, resume *session) (*control, error) {
	conn, cs, err := connect(ctx, r.opts.Dial, r.tls, r.e)
	if err != nil {
		return nil, err
	}
	stop := closeOnDone(ctx, conn)
	c, err := r.handshake(conn, cs, resume)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// handshake runs the upgrade, CPace and the key confirmations on conn.
func (r *runner) handshake(conn net.Conn, cs *tls.ConnectionState, resume *session) (*control, error) {
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, fmt.Errorf("setting the handshake deadline: %w", err)
	}
	hello := wire.Hello{
		Version: wire.Version,
		Role:    wire.RoleControl,
		Nonce:   fresh(wire.NonceSize),
		Spare:   r.opts.Spare,
	}
	if resume != nil {
		hello.Resume = resume.id
		hello.Proof = resume.key.ResumeHelloProof(resume.id, hello.Nonce)
	}
	helloValue := hello.String()
	res, br, err := wire.Upgrade(conn, hostHeader(r.e), r.e.Name, helloValue)
	if err != nil {
		return nil, fmt.Errorf("upgrading to %s: %w", wire.UpgradeToken, err)
	}
	challengeValue := res.Header.Get(wire.HeaderChallenge)
	ch, err := wire.ParseChallenge(challengeValue)
	if err != nil {
		return nil, fmt.Errorf("the gateway's challenge: %w", err)
	}
	binding, err := r.binding(cs, ch.Bound)
	if err != nil {
		return nil, err
	}
	ex := wire.NewAgentExchange(r.e.Password, wire.SessionID(r.e.Name, hello.Nonce, ch.Nonce, binding))
	keys, err := ex.Finish(ch.Share, helloValue, challengeValue)
	if err != nil {
		return nil, fmt.Errorf("the gateway's challenge: %w", err)
	}
	auth := wire.Frame{Type: wire.FrameAuth, Share: ex.Share(), Confirmation: keys.AgentConfirmation()}
	if resume != nil {
		auth.ResumeProof = keys.ResumeProof(resume.key)
	}
	if err := wire.WriteFrame(conn, auth); err != nil {
		return nil, fmt.Errorf("sending AUTH: %w", err)
	}
	// From here on, whatever ends the handshake short of a valid WELCOME
	// (a refusal of any kind, a hang-up, a wrong confirmation) may be a
	// guess harvested: it counts as a failed key confirmation.
	opener := wire.NewOpener(keys.Session, false)
	welcome, err := readWelcome(br, opener)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeyConfirmation, err)
	}
	if !wire.Equal(welcome.Confirmation, keys.GatewayConfirmation()) {
		return nil, fmt.Errorf("%w: the WELCOME's confirmation is wrong", errKeyConfirmation)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clearing the handshake deadline: %w", err)
	}
	sess := &session{
		id:    welcome.Session,
		key:   keys.Session,
		bound: ch.Bound,
		alive: welcome.Alive,
		dead:  welcome.Dead,
	}
	if sess.alive <= 0 {
		sess.alive = defaultAlive
	}
	if sess.dead <= 0 {
		sess.dead = defaultDead
	}
	return &control{conn: conn, r: br, sess: sess, opener: opener}, nil
}

// binding returns the channel binding the proofs cover: the TLS session's
// when the gateway binds (bound), none otherwise.
func (r *runner) binding(cs *tls.ConnectionState, bound bool) ([]byte, error) {
	if !bound {
		if cs != nil {
			r.warnUnbound.Do(func() {
				r.log.Warn("the gateway does not see this agent's TLS session (binding=none): " +
					"TLS ends before the gateway, at a load balancer or proxy, and the proofs are not bound to it")
			})
		}
		return nil, nil
	}
	if cs == nil {
		return nil, errors.New("the gateway binds the proofs to a TLS session, but this entry connects without TLS")
	}
	b := wire.Binding(cs)
	if b == nil {
		return nil, errors.New("the TLS session gives no keying material for the channel binding")
	}
	return b, nil
}

// readWelcome reads the gateway's answer to AUTH, skipping frames of other
// types; a REFUSE or CLOSE becomes a *wire.Refusal.
func readWelcome(br *bufio.Reader, o *wire.Opener) (wire.Frame, error) {
	for {
		f, err := o.ReadWelcome(br)
		if err != nil {
			return wire.Frame{}, fmt.Errorf("reading the gateway's WELCOME: %w", err)
		}
		switch f.Type {
		case wire.FrameWelcome:
			return f, nil
		case wire.FrameRefuse, wire.FrameClose:
			return wire.Frame{}, &wire.Refusal{Code: f.Code, Reason: f.Reason}
		}
	}
}
