package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// Defaults of the liveness settings, for a WELCOME that gives none.
const (
	defaultAlive = 20 * time.Second
	defaultDead  = 60 * time.Second
)

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
	// r reads the connection: for the whole registration, the handshake's
	// reader when it held bytes read past the WELCOME, else the connection
	// itself, so that an idle entry keeps no read buffer of its own.
	r    io.Reader
	sess *session
	// opener checks the tags of the gateway's frames, from the WELCOME on.
	opener *wire.Opener
	// instance names the gateway process, when it said; the runner holds
	// it in the entry's gateways while registered.
	instance string
}

// register opens a control connection for the runner's entry and runs the
// handshake of docs/protocol.md section 3. When resume is set it asks for
// that session back. A refusal comes back as a *wire.Refusal; a gateway
// instance on which another runner of the entry holds or makes a
// registration as a *duplicateError, before any password attempt.
func (r *runner) register(ctx context.Context, resume *session) (*control, error) {
	leave, err := r.g.gate.enter(ctx, r.target)
	if err != nil {
		return nil, err
	}
	defer leave()
	gc, err := connect(ctx, r.opts.Dial, r.tls, r.e, r.target)
	if err != nil {
		return nil, err
	}
	conn, cs := gc.Conn, gc.tls
	stop := closeOnDone(ctx, conn)
	var claimed string
	c, err := r.handshake(conn, cs, resume, func(ch wire.Challenge) error {
		r.instance = ch.Instance
		if h := r.g.claim(ch.Instance, r.target); h != "" {
			return &duplicateError{instance: ch.Instance, holder: h}
		}
		claimed = ch.Instance
		return nil
	})
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		r.g.unclaim(claimed, r.target)
		conn.Close()
		return nil, err
	}
	c.instance = claimed
	return c, nil
}

// handshake runs the upgrade, CPace and the key confirmations on conn.
// challenged sees the gateway's challenge before the agent's AUTH.
func (r *runner) handshake(conn net.Conn, cs *tls.ConnectionState, resume *session, challenged func(wire.Challenge) error) (*control, error) {
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, fmt.Errorf("setting the handshake deadline: %w", err)
	}
	g := wire.Registering{
		Host:       hostHeader(r.e),
		Name:       r.e.Name,
		Password:   r.e.Password,
		Agent:      r.opts.Version,
		Binding:    func(bound bool) ([]byte, error) { return r.binding(cs, bound) },
		Challenged: challenged,
	}
	if resume != nil {
		g.Resume = &wire.Resumption{Session: resume.id, Key: resume.key}
	}
	reg, err := g.Run(conn)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clearing the handshake deadline: %w", err)
	}
	sess := &session{
		id:    reg.Session,
		key:   reg.Key,
		bound: reg.Bound,
		alive: reg.Alive,
		dead:  reg.Dead,
	}
	if sess.alive <= 0 {
		sess.alive = defaultAlive
	}
	if sess.dead <= 0 {
		sess.dead = defaultDead
	}
	var frames io.Reader = conn
	if reg.Reader.Buffered() > 0 {
		frames = reg.Reader
	}
	return &control{conn: conn, r: frames, sess: sess, opener: reg.Opener}, nil
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
