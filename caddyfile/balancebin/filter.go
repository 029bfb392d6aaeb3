package balancebin

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// expectFilter describes a valid filter.
const expectFilter = "an IPv4 address, an IPv4 prefix such as 51.254.* or a DNS name"

// FilterKind tells which addresses a back entry accepts registrations from.
type FilterKind int

// The kinds of filter.
const (
	// FilterNone: any address.
	FilterNone FilterKind = iota
	// FilterIP: one IPv4 address, such as 51.254.22.85.
	FilterIP
	// FilterPrefix: the IPv4 addresses starting with one to three given
	// numbers, such as 51.254.*.
	FilterPrefix
	// FilterDNS: the addresses a DNS name resolves to, such as
	// home.dyndns.net.
	FilterDNS
)

// String returns "none", "ip", "prefix" or "dns".
func (k FilterKind) String() string {
	switch k {
	case FilterNone:
		return "none"
	case FilterIP:
		return "ip"
	case FilterPrefix:
		return "prefix"
	case FilterDNS:
		return "dns"
	}
	return "FilterKind(" + strconv.Itoa(int(k)) + ")"
}

// Filter is what follows "#:" in a back entry: either a port, which is not
// used and accepts any address, or "*" and an optional address filter.
type Filter struct {
	Kind FilterKind
	// Value is the filter as written after "*": "51.254.22.85",
	// "51.254.*" or "home.dyndns.net"; empty for FilterNone.
	Value string
	// Star is true when the entry was written in the "*" form rather than
	// the port form.
	Star bool
}

// Allows reports whether a subserver connecting from addr may register
// under the entry. An IPv4-mapped IPv6 address is treated as IPv4. For a
// DNS filter, resolve looks the name up; its error is returned as is.
func (f Filter) Allows(addr netip.Addr, resolve func(host string) ([]netip.Addr, error)) (bool, error) {
	addr = addr.Unmap().WithZone("")
	switch f.Kind {
	case FilterNone:
		return true, nil
	case FilterIP:
		want, err := netip.ParseAddr(f.Value)
		if err != nil {
			return false, fmt.Errorf("balancebin: bad IP filter %q: %w", f.Value, err)
		}
		return want.Unmap() == addr, nil
	case FilterPrefix:
		head, ok := strings.CutSuffix(f.Value, ".*")
		parts := strings.Split(head, ".")
		if !ok || len(parts) > 3 {
			return false, fmt.Errorf("balancebin: bad prefix filter %q", f.Value)
		}
		a := addr.As16() // the IPv4 octets are a[12:] when addr.Is4
		match := addr.Is4()
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return false, fmt.Errorf("balancebin: bad prefix filter %q", f.Value)
			}
			match = match && a[12+i] == byte(v)
		}
		return match, nil
	case FilterDNS:
		if resolve == nil {
			return false, errors.New("balancebin: no resolver for DNS filter " + strconv.Quote(f.Value))
		}
		addrs, err := resolve(f.Value)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if a.Unmap().WithZone("") == addr {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("balancebin: unknown filter kind %d", int(f.Kind))
}

// filter reads the filter written after "*" between off and end, which
// holds no blank.
func (s *segment) filter(off, end int) (Filter, error) {
	v := s.text[off:end]
	f := Filter{Value: v, Star: true}
	if !isNumeric(strings.ReplaceAll(v, "*", "")) {
		if err := s.dnsName(off, v); err != nil {
			return Filter{}, err
		}
		f.Kind = FilterDNS
		return f, nil
	}
	head, prefix := strings.CutSuffix(v, ".*")
	if i := strings.IndexByte(head, '*'); i >= 0 {
		return Filter{}, s.fail(off+i, "*", expectFilter)
	}
	n, err := s.octets(off, head)
	switch {
	case err != nil:
		return Filter{}, err
	case prefix && n > 3:
		return Filter{}, s.fail(off, v, `an IPv4 prefix of one to three numbers followed by ".*"`)
	case prefix:
		f.Kind = FilterPrefix
	case n != 4:
		return Filter{}, s.fail(off, v, expectIPv4)
	default:
		f.Kind = FilterIP
	}
	return f, nil
}

// ParseFilter reads an address filter as written after "*" in a back entry
// ("51.254.22.85", "51.254.*", "home.dyndns.net"); an empty one, or "*",
// allows any address. where names the filter's place in error messages.
func ParseFilter(where, v string) (Filter, error) {
	if v == "" || v == "*" {
		return Filter{Star: true}, nil
	}
	s := &segment{text: v, pos: Position{File: where, Line: 1, Column: 1}, end: "", public: true}
	if i := strings.IndexFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ';' }); i >= 0 {
		return Filter{}, s.fail(i, v[i:i+1], expectFilter)
	}
	return s.filter(0, len(v))
}
