package wire

import (
	"fmt"
	"time"
)

// Code says why a connection or a registration was refused or closed.
type Code uint8

// Refusal and close codes. Their names are what the Tildegate-Refusal header
// carries; the numbers are what REFUSE and CLOSE frames carry.
const (
	CodeWrongPassword     Code = 1
	CodeNameTaken         Code = 2
	CodeAddressNotAllowed Code = 3
	CodeTLSRequired       Code = 4
	CodeUnknownName       Code = 5
	CodeBadRequest        Code = 6
	CodeThrottled         Code = 7
	CodeEntryRemoved      Code = 8
	CodePasswordChanged   Code = 9
	CodeResumedElsewhere  Code = 10
	CodeShuttingDown      Code = 11
	CodeBadTicket         Code = 12
	CodeVersion           Code = 13
	CodeTooMany           Code = 14
	CodeLocalUnavailable  Code = 15
	CodeHeld              Code = 16
	CodeBusy              Code = 17
)

var codeNames = map[Code]string{
	CodeWrongPassword:     "wrong-password",
	CodeNameTaken:         "name-taken",
	CodeAddressNotAllowed: "address-not-allowed",
	CodeTLSRequired:       "tls-required",
	CodeUnknownName:       "unknown-name",
	CodeBadRequest:        "bad-request",
	CodeThrottled:         "throttled",
	CodeEntryRemoved:      "entry-removed",
	CodePasswordChanged:   "password-changed",
	CodeResumedElsewhere:  "resumed-elsewhere",
	CodeShuttingDown:      "shutting-down",
	CodeBadTicket:         "bad-ticket",
	CodeVersion:           "version",
	CodeTooMany:           "too-many",
	CodeLocalUnavailable:  "local-unavailable",
	CodeHeld:              "held",
	CodeBusy:              "busy",
}

// String returns the code's name, e.g. "wrong-password".
func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return fmt.Sprintf("code-%d", uint8(c))
}

// ParseCode returns the code with the given name.
func ParseCode(name string) (Code, bool) {
	for c, n := range codeNames {
		if n == name {
			return c, true
		}
	}
	return 0, false
}

// Permanent reports whether retrying at once cannot help: the agent's
// configuration or the gateway's must change first.
func (c Code) Permanent() bool {
	switch c {
	case CodeWrongPassword, CodeAddressNotAllowed, CodeTLSRequired, CodeUnknownName,
		CodeVersion, CodePasswordChanged, CodeEntryRemoved, CodeBadRequest:
		return true
	}
	return false
}

// Refusal is a refusal or close received from the peer, with its reason.
type Refusal struct {
	Code   Code
	Reason string
	// RetryAfter is how long the gateway asked the agent to wait before it
	// tries again; 0 when it did not say.
	RetryAfter time.Duration
}

// Error implements error.
func (r *Refusal) Error() string {
	if r.Reason == "" {
		return "refused: " + r.Code.String()
	}
	return fmt.Sprintf("refused: %s: %s", r.Code, r.Reason)
}
