package wire

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"strings"
)

// Labels that keep each derived value apart from the others.
const (
	// ExporterLabel is the TLS exporter label of the channel binding.
	ExporterLabel = "EXPORTER-tildegate/1"

	keySalt       = "tildegate/1 key "
	keyIterations = 20000
	keySize       = 32
)

// Key is the long-term secret both sides derive from an entry's password;
// the password itself never crosses the wire.
type Key []byte

// DeriveKey stretches the password of the entry called name (PBKDF2 with
// SHA-256, salted with the lower-case name), so that a captured proof is
// costly to guess a password from.
func DeriveKey(name, password string) Key {
	k, err := pbkdf2.Key(sha256.New, password, []byte(keySalt+strings.ToLower(name)), keyIterations, keySize)
	if err != nil {
		panic(err) // only for FIPS-invalid parameters, which these are not
	}
	return k
}

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

// Transcript is what a control handshake's proofs cover: the name, both
// nonces and the channel binding.
type Transcript [sha256.Size]byte

// NewTranscript hashes the handshake's public values.
func NewTranscript(name string, agentNonce, gatewayNonce, binding []byte) Transcript {
	h := sha256.New()
	writeParts(h, []byte(UpgradeToken), []byte(strings.ToLower(name)), agentNonce, gatewayNonce, binding)
	var t Transcript
	h.Sum(t[:0])
	return t
}

// AgentProof proves to the gateway that the agent knows the key.
func (k Key) AgentProof(t Transcript) []byte { return mac(k, "agent proof", t[:]) }

// GatewayProof proves to the agent that the gateway knows the key.
func (k Key) GatewayProof(t Transcript) []byte { return mac(k, "gateway proof", t[:]) }

// SessionKey is the session's secret, known to the two ends only.
func (k Key) SessionKey(t Transcript) []byte { return mac(k, "session key", t[:]) }

// ResumeProof proves, with the previous session's key, that the agent is
// the one that held the name before a drop.
func ResumeProof(previousSessionKey []byte, t Transcript) []byte {
	return mac(previousSessionKey, "resume", t[:])
}

// BackProof proves that a back connection comes from the agent that holds
// the session: it covers the ticket, a fresh nonce and the back
// connection's own channel binding.
func BackProof(sessionKey, session, ticket, nonce, binding []byte) []byte {
	return mac(sessionKey, "back", session, ticket, nonce, binding)
}

// Equal compares two proofs in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }

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
