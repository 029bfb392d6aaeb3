package balancebin

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// What the parsers expect of addresses.
const (
	expectHost   = "a host (DNS name, IPv4 address or [IPv6 address])"
	expectPort   = "a port number (1-65535)"
	expectIPv4   = "an IPv4 address (four numbers from 0 to 255)"
	expectOctet  = "a number from 0 to 255"
	expectLabel  = "a letter or digit"
	expectDNSish = `a letter, digit, "-", "_" or "."`
)

// HostPort is a network address as written in an entry. Host is a DNS
// name, an IPv4 address or an IPv6 address without its brackets, spelled
// as in the file.
type HostPort struct {
	Host string
	Port uint16
}

// String returns the address as host:port, with brackets around an IPv6
// host, as net.JoinHostPort does.
func (h HostPort) String() string {
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}

// isHostChar reports whether c may appear in a DNS name or IPv4 address.
func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// isNumeric reports whether s holds only digits and dots, which makes it an
// IPv4 address or nothing.
func isNumeric(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// hostPort reads host ":" port between off and end. The port ends at the
// first blank. It returns the offset after the port.
func (s *segment) hostPort(off, end int) (HostPort, int, error) {
	host, p, err := s.host(off, end)
	if err != nil {
		return HostPort{}, 0, err
	}
	if p == end || s.text[p] != ':' {
		return HostPort{}, 0, s.fail(p, s.found(p), `":"`)
	}
	port, p, err := s.port(p+1, end)
	if err != nil {
		return HostPort{}, 0, err
	}
	return HostPort{Host: host, Port: port}, p, nil
}

// host reads a DNS name, an IPv4 address or a bracketed IPv6 address from
// off and returns it, without brackets, with the offset after it.
func (s *segment) host(off, end int) (string, int, error) {
	t := s.text
	if off < end && t[off] == '[' {
		c := strings.IndexByte(t[off:end], ']')
		if c < 0 {
			return "", 0, s.fail(end, s.found(end), `"]"`)
		}
		c += off
		inner := t[off+1 : c]
		if inner == "" {
			return "", 0, s.fail(c, "]", "an IPv6 address")
		}
		if a, err := netip.ParseAddr(inner); err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, s.fail(off+1, inner, "an IPv6 address")
		}
		return inner, c + 1, nil
	}
	p := off
	for p < end && isHostChar(t[p]) {
		p++
	}
	if p == off {
		return "", 0, s.fail(off, s.found(off), expectHost)
	}
	host := t[off:p]
	if isNumeric(host) {
		n, err := s.octets(off, host)
		if err != nil {
			return "", 0, err
		}
		if n != 4 {
			return "", 0, s.fail(off, host, expectIPv4)
		}
		return host, p, nil
	}
	if err := s.dnsName(off, host); err != nil {
		return "", 0, err
	}
	return host, p, nil
}

// port reads a decimal port number from off; it ends at the first blank or
// at end. It returns the port and the offset after it.
func (s *segment) port(off, end int) (uint16, int, error) {
	p := off
	for p < end && !isBlank(s.text[p]) {
		p++
	}
	if p == off {
		return 0, 0, s.fail(off, s.found(off), expectPort)
	}
	v := 0
	for i := off; i < p; i++ {
		c := s.text[i]
		if c < '0' || c > '9' {
			return 0, 0, s.fail(i, s.found(i), expectPort)
		}
		if v <= 65535 {
			v = v*10 + int(c-'0')
		}
	}
	if v == 0 || v > 65535 {
		return 0, 0, s.fail(off, s.text[off:p], expectPort)
	}
	return uint16(v), p, nil
}

// octets checks the dot-separated numbers of text, an IPv4 address or the
// head of a prefix holding only digits and dots, found at off. It returns
// how many numbers there are.
func (s *segment) octets(off int, text string) (int, error) {
	n := 0
	for start := 0; ; {
		end := strings.IndexByte(text[start:], '.')
		last := end < 0
		if last {
			end = len(text)
		} else {
			end += start
		}
		o := text[start:end]
		switch {
		case o == "":
			return 0, s.fail(off+start, s.found(off+start), expectOctet)
		case len(o) > 1 && o[0] == '0':
			return 0, s.fail(off+start, o, expectOctet+" without leading zeros")
		case len(o) > 3:
			return 0, s.fail(off+start, o, expectOctet)
		}
		if v, _ := strconv.Atoi(o); v > 255 {
			return 0, s.fail(off+start, o, expectOctet)
		}
		n++
		if last {
			return n, nil
		}
		start = end + 1
	}
}

// dnsName checks the DNS name found at off: labels of letters, digits, "-"
// and "_", 1 to 63 characters long, not starting or ending with "-".
func (s *segment) dnsName(off int, name string) error {
	if len(name) > 253 {
		return s.fail(off, name, "a DNS name of at most 253 characters")
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			if !isHostChar(name[i]) {
				return s.fail(off+i, s.found(off+i), expectDNSish)
			}
			continue
		}
		label := name[start:i]
		switch {
		case label == "":
			return s.fail(off+i, s.found(off+i), expectLabel)
		case len(label) > 63:
			return s.fail(off+start+63, s.found(off+start+63), `"." (a DNS label has at most 63 characters)`)
		case label[0] == '-':
			return s.fail(off+start, "-", expectLabel)
		case label[len(label)-1] == '-':
			return s.fail(off+i-1, "-", expectLabel)
		}
		start = i + 1
	}
	return nil
}
