package balancebin

import "strings"

// ProxyAuth is how a subserver logs in to an HTTP proxy.
type ProxyAuth int

// The proxy logins.
const (
	// ProxyAuthNone: no login.
	ProxyAuthNone ProxyAuth = iota
	// ProxyAuthBasic: Basic authentication, written user:pass@.
	ProxyAuthBasic
	// ProxyAuthNTLM: NTLM, written domain\user:pass@ or \user:pass@.
	ProxyAuthNTLM
)

// String returns "none", "basic" or "ntlm".
func (a ProxyAuth) String() string {
	switch a {
	case ProxyAuthBasic:
		return "basic"
	case ProxyAuthNTLM:
		return "ntlm"
	}
	return "none"
}

// Proxy is one HTTP proxy on the way from a subserver to the gateway.
type Proxy struct {
	Auth ProxyAuth
	// Domain is the NTLM domain, empty when none is written.
	Domain string
	// User and Password are the login, empty for ProxyAuthNone.
	User, Password string
	// Address is the proxy itself.
	Address HostPort
}

// proxy parses a proxy between off and end.
//
// A login is everything up to the last "@". Its user part ends at its first
// ":" and the password is the rest; a "\" in the user part makes it NTLM,
// with the domain before the first "\".
func (s *segment) proxy(off, end int) (Proxy, error) {
	if off == end {
		return Proxy{}, s.fail(off, s.found(off), "a proxy address")
	}
	var px Proxy
	addr := off
	if at := strings.LastIndexByte(s.text[off:end], '@'); at >= 0 {
		login := s.text[off : off+at]
		colon := strings.IndexByte(login, ':')
		if colon < 0 {
			return Proxy{}, s.fail(off+at, "@", `":" between the proxy user and password`)
		}
		user, userOff := login[:colon], off
		px.Auth = ProxyAuthBasic
		if bs := strings.IndexByte(user, '\\'); bs >= 0 {
			px.Auth = ProxyAuthNTLM
			px.Domain, user, userOff = user[:bs], user[bs+1:], off+bs+1
		}
		if user == "" {
			return Proxy{}, s.fail(userOff, s.found(userOff), "a proxy user name")
		}
		px.User, px.Password = user, login[colon+1:]
		addr = off + at + 1
	}
	hp, p, err := s.hostPort(addr, end)
	if err != nil {
		return Proxy{}, err
	}
	px.Address = hp
	return px, s.finish(p, end, expectAfterHop)
}
