package proxy

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors that a *HopError wraps when the proxy's login is the problem: a
// configuration change is needed, so retrying soon cannot help.
var (
	// ErrLoginRefused: the proxy answered 407 to the login.
	ErrLoginRefused = errors.New("the proxy refused the login")
	// ErrLoginRequired: the proxy wants a login and none is configured.
	ErrLoginRequired = errors.New("the proxy asks for a login and none is configured")
	// ErrNoCommonScheme: the proxy wants a login in a scheme the agent
	// cannot speak or that the configuration does not give.
	ErrNoCommonScheme = errors.New("the proxy offers no login scheme that is configured")
)

// HopError is a failure at one proxy of a chain. Its text never holds a
// password.
type HopError struct {
	// Hop is the proxy's place in the chain, from 1, of Hops.
	Hop, Hops int
	// Address is the proxy's host:port.
	Address string
	// Scheme is the login used with the proxy: "none", "basic" or "ntlm".
	Scheme string
	// Status is the proxy's HTTP status, 0 when it gave none.
	Status int
	// Err says what went wrong.
	Err error
}

// Error renders the failure as, for example,
// "proxy 2 of 2, 10.0.0.2:808 (ntlm): 407 Proxy Authentication Required: the proxy refused the login".
func (e *HopError) Error() string {
	s := fmt.Sprintf("proxy %d of %d, %s (%s): ", e.Hop, e.Hops, e.Address, e.Scheme)
	if e.Status != 0 {
		s += statusLine(e.Status) + ": "
	}
	return s + e.Err.Error()
}

// Unwrap returns Err.
func (e *HopError) Unwrap() error { return e.Err }

// Permanent reports whether the failure is the proxy login's: a wrong
// login, a missing one, or a scheme the proxy does not offer. Only a
// configuration change helps; the other failures may pass by themselves.
func (e *HopError) Permanent() bool {
	return errors.Is(e.Err, ErrLoginRefused) || errors.Is(e.Err, ErrLoginRequired) ||
		errors.Is(e.Err, ErrNoCommonScheme)
}

// statusLine renders a status code with its standard text.
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprintf("%d", code)
}

// loginError is one of the Err* sentinels with a more precise message.
type loginError struct {
	kind error
	msg  string
}

func (e *loginError) Error() string { return e.msg }
func (e *loginError) Unwrap() error { return e.kind }
