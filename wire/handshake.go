package wire

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"strings"
)

// Labels and sizes of the handshake's derived values.
const (
	// ExporterLabel is the TLS exporter label of the channel binding.
	ExporterLabel = "EXPORTER-tildegate/2"
	// ConfirmationSize is the size of a key confirmation tag.
	ConfirmationSize = sha512.Size
	// SessionKeySize is the size of a session key.
	SessionKeySize = 32

	sidLabel        = "tildegate/2 sid"
	sessionKeyLabel = "tildegate/2 session key"
	sidSize         = 32
)

// channelIdentifier is CPace's CI: the roles, initiator first, so that an
// agent's message can never be reflected to it as the gateway's.
var channelIdentifier = lvCat([]byte("tildegate/2 agent"), []byte("tildegate/2 gateway"))

// Binding returns the channel binding of a TLS connection: keying material
// that only the two ends of that TLS session share. It is nil without TLS.
func Binding(cs *tls.ConnectionState) []byte {
	if cs == nil {
		return nil
	}
	b, err := cs.ExportKeyingMaterial(ExporterLabel, nil, 32)
	if err != nil {
		return nil
	}
	return b
}

// SessionID is CPace's session identifier of a control handshake: it
// covers the lower-case name, both nonces and the channel binding (empty
// when the gateway binds nothing), so that the handshake's keys belong to
// this name, this run and this TLS session only.
func SessionID(name string, agentNonce, gatewayNonce, binding []byte) []byte {
	h := sha512.Sum512(lvCat([]byte(sidLabel), []byte(strings.ToLower(name)), agentNonce, gatewayNonce, binding))
	return h[:sidSize]
}

// Exchange is one side's CPace run in a control handshake. The agent is
// CPace's initiator A, the gateway its responder B.
type Exchange struct {
	sid    []byte
	agent  bool
	secret *cpaceSecret
}

// NewAgentExchange starts the agent's side of CPace for password and the
// session identifier sid.
func NewAgentExchange(password string, sid []byte) *Exchange {
	return newExchange(password, sid, true)
}

// NewGatewayExchange starts the gateway's side of CPace.
func NewGatewayExchange(password string, sid []byte) *Exchange {
	return newExchange(password, sid, false)
}

func newExchange(password string, sid []byte, agent bool) *Exchange {
	g := cpaceGenerator([]byte(password), channelIdentifier, sid)
	return &Exchange{sid: sid, agent: agent, secret: newCPaceSecret(g)}
}

// Share is this side's CPace message: Ya for the agent, Yb for the
// gateway.
func (e *Exchange) Share() []byte { return e.secret.share }

// Finish derives the handshake's keys from the peer's share. hello and
// challenge are the hello (Authorization) and Tildegate-Challenge header values
// as sent: CPace's associated data ADa and ADb, so that both sides agree
// on every field of them. An invalid share (not a group element, or the
// identity) is an error: CPace's abort.
func (e *Exchange) Finish(peerShare []byte, hello, challenge string) (*Keys, error) {
	k, err := e.secret.scalarMultVfy(peerShare)
	if err != nil {
		return nil, err
	}
	ya, yb := e.secret.share, peerShare
	if !e.agent {
		ya, yb = peerShare, e.secret.share
	}
	keys := &Keys{sid: e.sid, agentMsg: lvCat(ya, []byte(hello)), gatewayMsg: lvCat(yb, []byte(challenge))}
	isk := cpaceISK(e.sid, k, append(append([]byte(nil), keys.agentMsg...), keys.gatewayMsg...))
	h := sha512.New()
	h.Write([]byte("CPaceMac"))
	h.Write(e.sid)
	h.Write(isk)
	keys.macKey = h.Sum(nil)
	sk, err := hkdf.Key(sha256.New, isk, e.sid, sessionKeyLabel, SessionKeySize)
	if err != nil {
		return nil, err
	}
	keys.Session = sk
	return keys, nil
}

// Keys are what a finished CPace run gives both sides.
type Keys struct {
	sid                  []byte
	agentMsg, gatewayMsg []byte // lv_cat(Ya, ADa) and lv_cat(Yb, ADb)
	macKey               []byte
	// Session is the session key: back connections, resumption and frame
	// tags are proved with it.
	Session SessionKey
}

// AgentConfirmation is the agent's key confirmation tag Ta of the draft's
// section 10.4: HMAC-SHA-512 under mac_key over lv_cat(Ya, ADa).
func (k *Keys) AgentConfirmation() []byte { return hmacSHA512(k.macKey, k.agentMsg) }

// GatewayConfirmation is the gateway's tag Tb, over lv_cat(Yb, ADb).
func (k *Keys) GatewayConfirmation() []byte { return hmacSHA512(k.macKey, k.gatewayMsg) }

// ResumeProof proves, with the session key of the session being resumed,
// that the agent held it; it covers this handshake's session identifier
// and agent message, so it is worthless in any other handshake.
func (k *Keys) ResumeProof(previous SessionKey) []byte {
	return mac(previous, "resume", k.sid, k.agentMsg)
}

func hmacSHA512(key, msg []byte) []byte {
	h := hmac.New(sha512.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// SessionKey is a registration's secret, known to the two ends only.
type SessionKey []byte

// ResumeHelloProof goes in the hello of a control connection that resumes
// session: it proves the session key before the gateway admits the
// handshake past the throttle's spent budgets, which the session id alone
// (it travels in back hellos) must not do. It covers the hello's nonce.
func (k SessionKey) ResumeHelloProof(session, nonce []byte) []byte {
	return mac(k, "resume hello", session, nonce)
}

// BackProof proves that a back connection comes from the agent that holds
// the session: it covers the session, the ticket, the kind the ticket was
// issued for, a fresh nonce and the back connection's own channel binding.
func (k SessionKey) BackProof(session, ticket []byte, kind Kind, nonce, binding []byte) []byte {
	return mac(k, "back", session, ticket, []byte{byte(kind)}, nonce, binding)
}

// BackAcceptProof is the gateway's answer to a back hello: the agent knows
// from it that the gateway that holds the session accepted the ticket.
func (k SessionKey) BackAcceptProof(session, ticket, nonce, binding []byte) []byte {
	return mac(k, "back accepted", session, ticket, nonce, binding)
}

// frameKey is the key of the frame tags one side sends.
func (k SessionKey) frameKey(fromAgent bool) []byte {
	if fromAgent {
		return mac(k, "frames from the agent")
	}
	return mac(k, "frames from the gateway")
}

// Equal compares two proofs in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }

// mac is HMAC-SHA-256 under key over the label and the parts, each behind
// its 32-bit big-endian length.
func mac(key []byte, label string, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	writeParts(h, append([][]byte{[]byte(label)}, parts...)...)
	return h.Sum(nil)
}

// writeParts writes each part behind its length, so that no two lists of
// parts hash alike.
func writeParts(h interface{ Write([]byte) (int, error) }, parts ...[]byte) {
	for _, p := range parts {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		h.Write(n[:])
		h.Write(p)
	}
}
