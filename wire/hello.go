package wire

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The HTTP/1.1 upgrade that opens every tildegate connection.
const (
	// Version is the protocol version these types speak.
	Version = 3
	// UpgradePrefix starts the Upgrade header value of every version.
	UpgradePrefix = "tildegate/"
	// UpgradeToken is the Upgrade header value of this version.
	UpgradeToken = "tildegate/3"
	// HeaderHello carries the agent's Hello in the upgrade request, under
	// the HelloScheme: Caddy's access log leaves the values of this header
	// out, so sessions, tickets and proofs stay out of the log.
	HeaderHello = "Authorization"
	// HelloScheme starts the HeaderHello value.
	HelloScheme = "Tildegate"
	// HeaderChallenge carries the gateway's Challenge in the 101 answer to
	// a control hello.
	HeaderChallenge = "Tildegate-Challenge"
	// HeaderProof carries the gateway's proof in the 101 answer to a back
	// hello.
	HeaderProof = "Tildegate-Proof"
	// HeaderRefusal carries the code of a refused upgrade; the body says why.
	HeaderRefusal = "Tildegate-Refusal"
	// MaxHeaderSize bounds a hello or challenge header value, in bytes.
	MaxHeaderSize = 1024
)

// Role says what a connection is for.
type Role string

// The two roles.
const (
	RoleControl Role = "control"
	RoleBack    Role = "back"
)

// Sizes of the random and derived values, in bytes.
const (
	NonceSize   = 32
	SessionSize = 16
	TicketSize  = 16
	ProofSize   = 32
)

// Hello is what the agent says in its upgrade request. A receiver ignores
// fields it does not know, so that later revisions can add fields.
type Hello struct {
	Version int
	Role    Role
	Nonce   []byte // NonceSize fresh random bytes
	// Resume, on a control hello, names the session the agent held before
	// a drop and wants back; Proof then proves that session's key (see
	// SessionKey.ResumeHelloProof).
	Resume []byte
	// Agent, on a control hello, names the agent's software and version,
	// e.g. "tildegate-agent/1.2.0", for the gateway's list of agents:
	// at most MaxAgentLength characters of AgentChars.
	Agent string
	// Session, Ticket and Proof are set on a back hello; Proof also on a
	// control hello that resumes.
	Session []byte
	Ticket  []byte
	Proof   []byte
}

// Challenge is what the gateway says in its 101 answer to a control hello.
// A receiver ignores fields it does not know.
type Challenge struct {
	Version int
	Nonce   []byte // NonceSize fresh random bytes
	// Bound reports whether the gateway sees the connection's TLS session
	// and binds the handshake to it.
	Bound bool
	// Share is the gateway's CPace share Yb.
	Share []byte
	// Instance names the gateway process, so that an agent that reaches
	// one gateway at two addresses or names notices it: at most
	// MaxInstanceLength characters of InstanceChars; empty sends none.
	Instance string
}

// The instance field of a challenge.
const (
	MaxInstanceLength = 64
	InstanceChars     = "letters, digits and ._-"
)

// ValidInstance reports whether s can be a challenge's instance field.
func ValidInstance(s string) bool { return validToken(s, MaxInstanceLength, "._-") }

var b64 = base64.RawURLEncoding

// String encodes the hello as a header value:
// "Tildegate v=3; role=back; nonce=...; session=...; ticket=...; proof=...".
func (h Hello) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s v=%d; role=%s; nonce=%s", HelloScheme, h.Version, h.Role, b64.EncodeToString(h.Nonce))
	if h.Agent != "" {
		fmt.Fprintf(&b, "; agent=%s", h.Agent)
	}
	for _, f := range []struct {
		key string
		val []byte
	}{{"resume", h.Resume}, {"session", h.Session}, {"ticket", h.Ticket}, {"proof", h.Proof}} {
		if f.val != nil {
			fmt.Fprintf(&b, "; %s=%s", f.key, b64.EncodeToString(f.val))
		}
	}
	return b.String()
}

// String encodes the challenge as a header value.
func (c Challenge) String() string {
	binding := "none"
	if c.Bound {
		binding = "tls"
	}
	v := fmt.Sprintf("v=%d; nonce=%s; binding=%s; share=%s", c.Version, b64.EncodeToString(c.Nonce), binding, b64.EncodeToString(c.Share))
	if c.Instance != "" {
		v += "; instance=" + c.Instance
	}
	return v
}

// ParseHello decodes a hello header value and checks that it has what its
// role needs.
func ParseHello(value string) (Hello, error) {
	scheme, value, _ := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, HelloScheme) {
		return Hello{}, fmt.Errorf("the %s header holds no %s hello", HeaderHello, HelloScheme)
	}
	fields, err := parseFields(value)
	if err != nil {
		return Hello{}, err
	}
	h := Hello{Role: Role(fields["role"])}
	if h.Version, err = parseVersion(fields); err != nil {
		return Hello{}, err
	}
	if h.Nonce, err = decodeField(fields, "nonce", NonceSize, true); err != nil {
		return Hello{}, err
	}
	switch h.Role {
	case RoleControl:
		if h.Resume, err = decodeField(fields, "resume", SessionSize, false); err != nil {
			return Hello{}, err
		}
		if h.Proof, err = decodeField(fields, "proof", ProofSize, false); err != nil {
			return Hello{}, err
		}
		if agent, ok := fields["agent"]; ok {
			if !ValidAgent(agent) {
				return Hello{}, fmt.Errorf("field \"agent\": want at most %d characters of %s", MaxAgentLength, AgentChars)
			}
			// A copy: the gateway keeps the agent's name for as long as it
			// is registered, and a slice would keep the whole header.
			h.Agent = strings.Clone(agent)
		}
	case RoleBack:
		if h.Session, err = decodeField(fields, "session", SessionSize, true); err != nil {
			return Hello{}, err
		}
		if h.Ticket, err = decodeField(fields, "ticket", TicketSize, true); err != nil {
			return Hello{}, err
		}
		if h.Proof, err = decodeField(fields, "proof", ProofSize, true); err != nil {
			return Hello{}, err
		}
	default:
		return Hello{}, fmt.Errorf("hello: role %s, want %q or %q", Quote(string(h.Role)), RoleControl, RoleBack)
	}
	return h, nil
}

// The agent field of a control hello.
const (
	MaxAgentLength = 64
	AgentChars     = "letters, digits and ._+/-"
)

// ValidAgent reports whether s can be a hello's agent field.
func ValidAgent(s string) bool { return validToken(s, MaxAgentLength, "._+/-") }

// validToken reports whether s has 1 to max characters, each a letter, a
// digit or one of extra.
func validToken(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(extra, c)) {
			return false
		}
	}
	return true
}

// ParseChallenge decodes a Tildegate-Challenge header value.
func ParseChallenge(value string) (Challenge, error) {
	fields, err := parseFields(value)
	if err != nil {
		return Challenge{}, err
	}
	var c Challenge
	if c.Version, err = parseVersion(fields); err != nil {
		return Challenge{}, err
	}
	if c.Nonce, err = decodeField(fields, "nonce", NonceSize, true); err != nil {
		return Challenge{}, err
	}
	if c.Share, err = decodeField(fields, "share", ShareSize, true); err != nil {
		return Challenge{}, err
	}
	switch fields["binding"] {
	case "tls":
		c.Bound = true
	case "none":
	default:
		return Challenge{}, fmt.Errorf("challenge: binding %s, want \"tls\" or \"none\"", Quote(fields["binding"]))
	}
	if instance, ok := fields["instance"]; ok {
		if !ValidInstance(instance) {
			return Challenge{}, fmt.Errorf("challenge: field \"instance\": want at most %d characters of %s", MaxInstanceLength, InstanceChars)
		}
		c.Instance = instance
	}
	return c, nil
}

// UpgradeVersion returns the version of an Upgrade header value of the
// form tildegate/N, and whether it has that form.
func UpgradeVersion(token string) (int, bool) {
	if len(token) <= len(UpgradePrefix) || !strings.EqualFold(token[:len(UpgradePrefix)], UpgradePrefix) {
		return 0, false
	}
	n, err := strconv.Atoi(token[len(UpgradePrefix):])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// VersionRefusal is the refusal of a peer that speaks another version.
func VersionRefusal(theirs string) *Refusal {
	return &Refusal{Code: CodeVersion, Reason: fmt.Sprintf(
		"protocol version %s is not supported: this side speaks only %s; run a tildegate-agent and a gateway that speak %s",
		Quote(theirs), UpgradeToken, UpgradeToken)}
}

func parseFields(value string) (map[string]string, error) {
	if len(value) > MaxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes, at most %d allowed", len(value), MaxHeaderSize)
	}
	fields := make(map[string]string)
	for part := range strings.SplitSeq(value, ";") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("malformed field %s, want key=value", Quote(strings.TrimSpace(part)))
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("field %s given twice", Quote(key))
		}
		fields[key] = val
	}
	return fields, nil
}

func parseVersion(fields map[string]string) (int, error) {
	if fields["v"] != strconv.Itoa(Version) {
		return 0, VersionRefusal(fields["v"])
	}
	return Version, nil
}

func decodeField(fields map[string]string, key string, size int, required bool) ([]byte, error) {
	val, ok := fields[key]
	if !ok {
		if required {
			return nil, fmt.Errorf("field %q is missing", key)
		}
		return nil, nil
	}
	b, err := DecodeValue(val, size)
	if err != nil {
		return nil, fmt.Errorf("field %q: %w", key, err)
	}
	return b, nil
}

// EncodeValue encodes a binary value of a header field: unpadded
// base64url.
func EncodeValue(b []byte) string { return b64.EncodeToString(b) }

// DecodeValue decodes a binary value of size bytes of a header field.
func DecodeValue(s string, size int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("want %d bytes in unpadded base64url", size)
	}
	return b, nil
}

// maxQuoted bounds how much of what a peer sent a message quotes.
const maxQuoted = 40

// Quote quotes at most a few dozen bytes of s, which a peer sent, for an
// error message or a log: "...", with the rest cut and said so.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncateUTF8(s, maxQuoted)) + fmt.Sprintf(" (%d bytes, cut)", len(s))
}
