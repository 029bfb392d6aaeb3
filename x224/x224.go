package x224

import (
	"bytes"
	"errors"
	"fmt"
)

// Sizes of the first packet.
const (
	// HeaderLen is the size of the TPKT header: version, reserved and the
	// 16-bit big-endian total length.
	HeaderLen = 4

	// MinPacketLength is the smallest Connection Request: the TPKT header
	// and the 7 octets of the fixed X.224 part (LI, code, DST-REF, SRC-REF,
	// class), with no routing line and no RDP_NEG_REQ.
	MinPacketLength = HeaderLen + fixedLen

	// MaxPacketLength is the largest Connection Request. The X.224 length
	// indicator is one octet that counts every byte after itself, and 255
	// is reserved (ISO 8073), so the TPDU is at most 1+254 octets and the
	// TPKT at most 4+1+254 = 259. A longer TPKT cannot hold a valid
	// Connection Request, so a listener never reads more than this.
	MaxPacketLength = HeaderLen + 1 + maxLI

	// MaxNameLen is the longest routing name.
	MaxNameLen = 64
)

const (
	tpktVersion = 3
	fixedLen    = 7    // LI, code, DST-REF(2), SRC-REF(2), class
	maxLI       = 254  // 255 is reserved for extension
	codeCR      = 0xE0 // Connection Request, upper nibble
	nameMarker  = "/~~"
)

var (
	cookiePrefix   = []byte("Cookie: ")
	mstshashPrefix = []byte("mstshash=")
	mstsPrefix     = []byte("msts=")
	marker         = []byte(nameMarker)
	crlf           = []byte("\r\n")
)

// Errors returned by [PacketLength] and [Parse]. The errors returned wrap
// one of these (test with [errors.Is]) and say what was found and what was
// expected.
var (
	// ErrNotRDP: the bytes do not start with a TPKT header (version 3,
	// reserved 0), so the connection is not RDP.
	ErrNotRDP = errors.New("x224: not an RDP connection request")

	// ErrMalformed: the bytes start like RDP but are not a valid
	// Connection Request: a wrong length, length indicator or TPDU code, a
	// routing line without CR LF, or an invalid routing name.
	ErrMalformed = errors.New("x224: malformed RDP connection request")

	// ErrInvalidName: the routing line starts with /~~ but what follows is
	// not a valid name. Errors wrapping ErrInvalidName also wrap
	// ErrMalformed.
	ErrInvalidName = errors.New("invalid routing name")
)

// StartsRDP reports whether a connection whose first byte is first may be
// RDP: every RDP client starts with the TPKT version, 0x03, and nothing
// else a web port sees does (a TLS ClientHello starts with 0x16, HTTP/1
// with a method's letter, HTTP/2 with prior knowledge with "PRI"). One byte
// decides, so a listener reads no more than that from a connection that
// is not RDP.
func StartsRDP(first byte) bool { return first == tpktVersion }

// PacketLength returns the total length of the TPKT whose header is
// header: the 16-bit big-endian length field, which counts the header
// itself. The caller reads that many bytes in all (length - 4 after the
// header) and passes them to [Parse].
//
// It returns an error wrapping [ErrNotRDP] if the header is not TPKT
// version 3 with reserved 0, and one wrapping [ErrMalformed] if the length
// is below [MinPacketLength] (11) or above [MaxPacketLength] (259).
func PacketLength(header [HeaderLen]byte) (int, error) {
	if header[0] != tpktVersion || header[1] != 0 {
		return 0, fmt.Errorf("%w: TPKT header starts 0x%02x 0x%02x, expected 0x03 0x00", ErrNotRDP, header[0], header[1])
	}
	n := int(header[2])<<8 | int(header[3])
	if n < MinPacketLength {
		return 0, fmt.Errorf("%w: TPKT length %d is below the minimum %d", ErrMalformed, n, MinPacketLength)
	}
	if n > MaxPacketLength {
		return 0, fmt.Errorf("%w: TPKT length %d exceeds the maximum %d", ErrMalformed, n, MaxPacketLength)
	}
	return n, nil
}

// Request is the result of [Parse].
type Request struct {
	// Name is the routing name after "/~~", case kept as sent (callers
	// lower-case it). It is "" when the packet has no routing line, or
	// when its routing line does not start with /~~ (for example
	// "Cookie: mstshash=alice" from xfreerdp /u:'CORP\alice'); the caller
	// decides what to do with such a connection.
	Name string

	// Packet is the Connection Request to forward to the RDP server. When
	// Name is set, it is a new slice: the input without the routing line,
	// with the TPKT length and the X.224 length indicator fixed, and every
	// other byte unchanged. When Name is "", it is the input slice itself.
	Packet []byte
}

// Parse parses packet, one whole TPKT holding an X.224 Connection Request
// (all [PacketLength] bytes, header included).
//
// It checks the TPKT version (3) and reserved octet (0), that the TPKT
// length field equals len(packet) and is within [MinPacketLength] and
// [MaxPacketLength], that the length indicator equals len(packet)-5, and
// that the TPDU code is Connection Request (upper nibble 0xE).
//
// The variable part after the fixed 7 octets is then looked at:
//
//   - "Cookie: " starts a cookie, which must end in CR LF within the packet.
//     "Cookie: mstshash=VALUE\r\n" and "Cookie: msts=VALUE\r\n" carry a name
//     if VALUE starts with "/~~"; any other cookie carries none.
//   - "/~~" starts a raw routing token carrying a name, which must end in
//     CR LF within the packet.
//   - anything else (an RDP_NEG_REQ, nothing at all) means no routing line.
//
// A name is 1 to [MaxNameLen] (64) ASCII letters, digits, '-', '_' and '.';
// the line must end right after it. A routing line that starts with /~~
// but holds no valid name is an error wrapping both [ErrMalformed] and
// [ErrInvalidName]. Only one routing line is allowed: a second one right
// after the first is an error.
//
// Whatever follows the routing line (RDP_NEG_REQ, RDP_NEG_CORRELATION_INFO)
// is kept unchanged and not parsed.
//
// Parse never modifies packet and never panics. On success it allocates
// nothing when Name is "", and only the new packet and the name string when
// Name is set. Errors wrap [ErrNotRDP] or [ErrMalformed].
func Parse(packet []byte) (Request, error) {
	if len(packet) < HeaderLen {
		return Request{}, fmt.Errorf("%w: truncated: %d bytes, a TPKT header needs %d", ErrMalformed, len(packet), HeaderLen)
	}
	n, err := PacketLength([HeaderLen]byte(packet))
	if err != nil {
		return Request{}, err
	}
	if n != len(packet) {
		return Request{}, fmt.Errorf("%w: TPKT length %d does not match the packet (%d bytes)", ErrMalformed, n, len(packet))
	}
	if li := int(packet[HeaderLen]); li != n-HeaderLen-1 {
		return Request{}, fmt.Errorf("%w: X.224 length indicator %d does not match the packet (%d bytes, expected %d)", ErrMalformed, li, n, n-HeaderLen-1)
	}
	if code := packet[HeaderLen+1]; code&0xF0 != codeCR {
		return Request{}, fmt.Errorf("%w: X.224 TPDU code 0x%02x, expected 0xe0 (Connection Request)", ErrMalformed, code)
	}

	start := HeaderLen + fixedLen
	v := packet[start:]
	var line, value []byte // whole routing line; the part that may carry a name
	switch {
	case bytes.HasPrefix(v, cookiePrefix):
		i := bytes.Index(v, crlf)
		if i < 0 {
			return Request{}, fmt.Errorf("%w: routing line %q has no CR LF", ErrMalformed, v)
		}
		line = v[:i+2]
		c := v[len(cookiePrefix):i]
		switch {
		case bytes.HasPrefix(c, mstshashPrefix):
			value = c[len(mstshashPrefix):]
		case bytes.HasPrefix(c, mstsPrefix):
			value = c[len(mstsPrefix):]
		}
	case bytes.HasPrefix(v, marker):
		i := bytes.Index(v, crlf)
		if i < 0 {
			return Request{}, fmt.Errorf("%w: routing token %q has no CR LF", ErrMalformed, v)
		}
		line = v[:i+2]
		value = v[:i]
	default:
		return Request{Packet: packet}, nil
	}

	rest := v[len(line):]
	if bytes.HasPrefix(rest, cookiePrefix) || bytes.HasPrefix(rest, marker) {
		return Request{}, fmt.Errorf("%w: a second routing line follows %q", ErrMalformed, line)
	}
	if !bytes.HasPrefix(value, marker) {
		return Request{Packet: packet}, nil
	}
	name := value[len(marker):]
	if err := checkName(name); err != nil {
		return Request{}, err
	}

	out := make([]byte, n-len(line))
	m := copy(out, packet[:start])
	copy(out[m:], rest)
	out[2] = byte(len(out) >> 8)
	out[3] = byte(len(out))
	out[HeaderLen] = byte(len(out) - HeaderLen - 1)
	return Request{Name: string(name), Packet: out}, nil
}

// checkName reports whether name is a valid routing name.
func checkName(name []byte) error {
	if len(name) == 0 {
		return fmt.Errorf("%w: %w: empty name after %s", ErrMalformed, ErrInvalidName, nameMarker)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %w: name is %d characters, at most %d allowed", ErrMalformed, ErrInvalidName, len(name), MaxNameLen)
	}
	for i, c := range name {
		if !nameChar(c) {
			return fmt.Errorf("%w: %w: byte 0x%02x at position %d of %q, expected a letter, digit, '-', '_' or '.'", ErrMalformed, ErrInvalidName, c, i, name)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}
