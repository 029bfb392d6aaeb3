package wire

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The HTTP/1.1 upgrade that opens every tildegate connection.
const (
	// UpgradeToken is the Upgrade header value of version 1.
	UpgradeToken = "tildegate/1"
	// HeaderHello carries the agent's Hello in the upgrade request.
	HeaderHello = "Tildegate-Hello"
	// HeaderChallenge carries the gateway's Challenge in the 101 answer.
	HeaderChallenge = "Tildegate-Challenge"
	// HeaderRefusal carries the code of a refused upgrade; the body says why.
	HeaderRefusal = "Tildegate-Refusal"
	// Version is the protocol version these types speak.
	Version = 1
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

// MaxSpare bounds the idle back connections an agent may ask for.
const MaxSpare = 16

// Hello is what the agent says in its upgrade request.
type Hello struct {
	Version int
	Role    Role
	Nonce   []byte // NonceSize fresh random bytes
	// Resume, on a control hello, names the session the agent held before
	// a drop and wants back.
	Resume []byte
	// Spare, on a control hello, is how many idle back connections the
	// agent would like the gateway to keep open ahead of requests.
	Spare int
	// Session, Ticket and Proof are set on a back hello.
	Session []byte
	Ticket  []byte
	Proof   []byte
}

// Challenge is what the gateway says in its 101 answer to a control hello.
type Challenge struct {
	Version int
	Nonce   []byte // NonceSize fresh random bytes
	// Bound reports whether the gateway sees the connection's TLS session
	// and binds the proofs to it.
	Bound bool
}

var b64 = base64.RawURLEncoding

// String encodes the hello as a header value:
// "v=1; role=back; nonce=...; session=...; ticket=...; proof=...".
func (h Hello) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=%d; role=%s; nonce=%s", h.Version, h.Role, b64.EncodeToString(h.Nonce))
	if h.Spare > 0 {
		fmt.Fprintf(&b, "; spare=%d", h.Spare)
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
	return fmt.Sprintf("v=%d; nonce=%s; binding=%s", c.Version, b64.EncodeToString(c.Nonce), binding)
}

// ParseHello decodes a Tildegate-Hello header value and checks that it has
// what its role needs.
func ParseHello(value string) (Hello, error) {
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
		if spare, ok := fields["spare"]; ok {
			n, err := strconv.Atoi(spare)
			if err != nil || n < 0 || n > MaxSpare {
				return Hello{}, fmt.Errorf("field \"spare\": want a number from 0 to %d", MaxSpare)
			}
			h.Spare = n
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
		return Hello{}, fmt.Errorf("hello: role %q, want %q or %q", h.Role, RoleControl, RoleBack)
	}
	return h, nil
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
	switch fields["binding"] {
	case "tls":
		c.Bound = true
	case "none":
	default:
		return Challenge{}, fmt.Errorf("challenge: binding %q, want \"tls\" or \"none\"", fields["binding"])
	}
	return c, nil
}

func parseFields(value string) (map[string]string, error) {
	fields := make(map[string]string)
	for part := range strings.SplitSeq(value, ";") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("malformed field %q, want key=value", strings.TrimSpace(part))
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("field %q given twice", key)
		}
		fields[key] = val
	}
	return fields, nil
}

func parseVersion(fields map[string]string) (int, error) {
	if fields["v"] != "1" {
		return 0, &Refusal{Code: CodeVersion, Reason: fmt.Sprintf("protocol version %q is not supported; this side speaks %d", fields["v"], Version)}
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
	b, err := b64.DecodeString(val)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("field %q: want %d bytes in unpadded base64url", key, size)
	}
	return b, nil
}
