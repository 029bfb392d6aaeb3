package wire

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"
)

// The agent's side of the protocol: the control handshake and the back
// connection's upgrade, as docs/protocol.md sections 3 and 4 describe
// them.

// ErrNoConfirmation is a control handshake that ended without the
// gateway's valid key confirmation once the agent had sent its own:
// whoever answered had one online guess at the password. Either the
// password differs from the gateway's, or the agent is not talking to the
// gateway (a fake one, or a man in the middle); the agent cannot tell
// which.
var ErrNoConfirmation = errors.New("no valid key confirmation from the gateway after the agent's: " +
	"either the password differs from the gateway's, or a fake gateway or a man in the middle answered")

// Resumption is a session the agent held before a drop and wants back.
type Resumption struct {
	Session []byte
	Key     SessionKey
}

// Registering is an agent's control handshake for one name.
type Registering struct {
	// Host is the Host of the upgrade request.
	Host     string
	Name     string
	Password string
	// Agent names the agent's software and version for the gateway's
	// list of agents (see Hello.Agent); empty sends none.
	Agent string
	// Resume, when set, asks for that session back.
	Resume *Resumption
	// Binding returns the channel binding to cover, given whether the
	// gateway said it binds to the TLS session; an error ends the
	// handshake.
	Binding func(bound bool) ([]byte, error)
	// Challenged, when set, sees the gateway's challenge before the agent
	// sends AUTH; an error ends the handshake there, before any password
	// attempt.
	Challenged func(Challenge) error
}

// Registration is what a control handshake gives the agent.
type Registration struct {
	Session []byte
	Key     SessionKey
	// Bound is set when the gateway bound the handshake to TLS, which back
	// connections must then be too.
	Bound bool
	// Instance names the gateway process that answered, when it said.
	Instance    string
	Alive, Dead time.Duration
	// Reader reads the control connection; it may hold bytes read past
	// the WELCOME.
	Reader *bufio.Reader
	// Opener checks the tags of the gateway's frames after the WELCOME.
	Opener *Opener
}

// Run runs the handshake on conn. A refusal before the agent's key
// confirmation comes back as a *Refusal; anything short of a valid
// WELCOME after it is an ErrNoConfirmation, which wraps the refusal or
// the failure when there is one.
func (g Registering) Run(conn net.Conn) (*Registration, error) {
	hello := Hello{Version: Version, Role: RoleControl, Nonce: randomNonce(), Agent: g.Agent}
	if g.Resume != nil {
		hello.Resume = g.Resume.Session
		hello.Proof = g.Resume.Key.ResumeHelloProof(g.Resume.Session, hello.Nonce)
	}
	helloValue := hello.String()
	res, br, err := Upgrade(conn, g.Host, g.Name, helloValue)
	if err != nil {
		return nil, fmt.Errorf("upgrading to %s: %w", UpgradeToken, err)
	}
	challengeValue := res.Header.Get(HeaderChallenge)
	ch, err := ParseChallenge(challengeValue)
	if err != nil {
		return nil, fmt.Errorf("the gateway's challenge: %w", err)
	}
	if g.Challenged != nil {
		if err := g.Challenged(ch); err != nil {
			return nil, err
		}
	}
	binding, err := g.Binding(ch.Bound)
	if err != nil {
		return nil, err
	}
	ex := NewAgentExchange(g.Password, SessionID(g.Name, hello.Nonce, ch.Nonce, binding))
	keys, err := ex.Finish(ch.Share, helloValue, challengeValue)
	if err != nil {
		return nil, fmt.Errorf("the gateway's challenge: %w", err)
	}
	auth := Frame{Type: FrameAuth, Share: ex.Share(), Confirmation: keys.AgentConfirmation()}
	if g.Resume != nil {
		auth.ResumeProof = keys.ResumeProof(g.Resume.Key)
	}
	if err := WriteFrame(conn, auth); err != nil {
		return nil, fmt.Errorf("sending AUTH: %w", err)
	}
	opener := NewOpener(keys.Session, false)
	welcome, err := readWelcome(br, opener)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoConfirmation, err)
	}
	if !Equal(welcome.Confirmation, keys.GatewayConfirmation()) {
		return nil, fmt.Errorf("%w: the WELCOME's confirmation is wrong", ErrNoConfirmation)
	}
	return &Registration{Session: welcome.Session, Key: keys.Session, Bound: ch.Bound, Instance: ch.Instance,
		Alive: welcome.Alive, Dead: welcome.Dead, Reader: br, Opener: opener}, nil
}

// readWelcome reads the gateway's answer to AUTH, skipping frames of other
// types; a REFUSE or CLOSE becomes a *Refusal.
func readWelcome(br *bufio.Reader, o *Opener) (Frame, error) {
	for {
		f, err := o.ReadWelcome(br)
		if err != nil {
			return Frame{}, fmt.Errorf("reading the gateway's WELCOME: %w", err)
		}
		switch f.Type {
		case FrameWelcome:
			return f, nil
		case FrameRefuse, FrameClose:
			return Frame{}, &Refusal{Code: f.Code, Reason: f.Reason}
		}
	}
}

// BackHello is the hello of a back connection that presents ticket, issued
// for kind in session, on a connection whose channel binding is binding
// (nil when the session is not bound).
func BackHello(session []byte, key SessionKey, ticket []byte, kind Kind, binding []byte) Hello {
	nonce := randomNonce()
	return Hello{Version: Version, Role: RoleBack, Nonce: nonce, Session: session, Ticket: ticket,
		Proof: key.BackProof(session, ticket, kind, nonce, binding)}
}

// PresentTicket opens a back connection to /~~name on conn with hello (see
// BackHello) and checks the gateway's proof in its answer: only the
// gateway that holds the session can accept it. It returns the reader of
// the connection.
func PresentTicket(conn net.Conn, host, name string, key SessionKey, hello Hello, binding []byte) (*bufio.Reader, error) {
	res, br, err := Upgrade(conn, host, name, hello.String())
	if err != nil {
		return nil, err
	}
	proof, err := DecodeValue(res.Header.Get(HeaderProof), ProofSize)
	if err != nil || !Equal(proof, key.BackAcceptProof(hello.Session, hello.Ticket, hello.Nonce, binding)) {
		return nil, errors.New("the gateway's answer to the back connection lacks the session's proof: " +
			"something on the path answered in its place")
	}
	return br, nil
}

// randomNonce returns NonceSize fresh random bytes.
func randomNonce() []byte {
	b := make([]byte, NonceSize)
	_, _ = rand.Read(b) // never fails: crypto/rand panics instead
	return b
}
