package proxy

import (
	"net/http"
	"strings"
)

// challenge is one scheme a proxy offers in Proxy-Authenticate, with its
// token68 (the NTLM challenge) or auth-params as written.
type challenge struct {
	Scheme string
	Data   string
}

// challenges reads the Proxy-Authenticate headers of h. A header may hold
// several challenges separated by commas; commas inside quoted strings and
// between a scheme's auth-params do not start a new one.
func challenges(h http.Header) []challenge {
	var out []challenge
	for _, v := range h.Values("Proxy-Authenticate") {
		for _, el := range splitList(v) {
			scheme, rest, _ := strings.Cut(el, " ")
			rest = strings.TrimSpace(rest)
			if !isToken(scheme) || strings.HasPrefix(rest, "=") {
				// An auth-param of the challenge before it.
				if n := len(out); n > 0 && el != "" {
					out[n-1].Data += ", " + el
				}
				continue
			}
			out = append(out, challenge{Scheme: scheme, Data: rest})
		}
	}
	return out
}

// offers returns the schemes of cs, each once, as the proxy spells them.
func offers(cs []challenge) []string {
	var out []string
	for _, c := range cs {
		if !containsFold(out, c.Scheme) {
			out = append(out, c.Scheme)
		}
	}
	return out
}

// find returns the first challenge of cs for scheme, ignoring case.
func find(cs []challenge, scheme string) (challenge, bool) {
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, scheme) {
			return c, true
		}
	}
	return challenge{}, false
}

// containsFold reports whether list holds s, ignoring case.
func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// splitList splits a header value at the commas outside quoted strings
// and trims each element; empty elements are dropped.
func splitList(v string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			if el := strings.TrimSpace(v[start:i]); el != "" {
				out = append(out, el)
			}
			start = i + 1
		}
	}
	if el := strings.TrimSpace(v[start:]); el != "" {
		out = append(out, el)
	}
	return out
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
