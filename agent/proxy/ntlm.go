package proxy

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/Azure/go-ntlmssp"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// ntlmUser returns the user name as go-ntlmssp takes it: domain\user, or
// the bare user when no domain is written.
func ntlmUser(px balancebin.Proxy) string {
	if px.Domain == "" {
		return px.User
	}
	return px.Domain + `\` + px.User
}

// ntlmNegotiate returns the Proxy-Authorization value of the first NTLM
// message.
func ntlmNegotiate(px balancebin.Proxy) (string, error) {
	msg, err := ntlmssp.NewNegotiateMessage(px.Domain, "")
	if err != nil {
		return "", fmt.Errorf("building the NTLM negotiation: %w", err)
	}
	return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
}

// ntlmChallenge returns the decoded NTLM challenge of a 407, false when
// the proxy sent none.
func ntlmChallenge(cs []challenge) ([]byte, bool) {
	c, found := find(cs, "NTLM")
	if !found || c.Data == "" {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(c.Data)
	if err != nil {
		return nil, false
	}
	return b, true
}

// ntlmAuthenticate returns the Proxy-Authorization value answering the
// proxy's challenge with px's login.
func ntlmAuthenticate(px balancebin.Proxy, chal []byte) (string, error) {
	msg, err := ntlmssp.NewAuthenticateMessage(chal, ntlmUser(px), px.Password, nil)
	if err != nil {
		// go-ntlmssp's errors describe the challenge, never the password.
		return "", fmt.Errorf("the proxy's NTLM challenge cannot be answered: %w", err)
	}
	return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
}

// connectNTLM opens a tunnel to target through a proxy with an NTLM
// login: NEGOTIATE in a first CONNECT, the CHALLENGE in the proxy's 407,
// AUTHENTICATE in a second CONNECT on the same connection, then 2xx.
func connectNTLM(conn net.Conn, br *bufio.Reader, px balancebin.Proxy, target string) (int, error) {
	neg, err := ntlmNegotiate(px)
	if err != nil {
		return 0, err
	}
	resp, err := roundTrip(conn, br, target, neg)
	if err != nil {
		return 0, err
	}
	if ok(resp) {
		return resp.StatusCode, nil // the proxy wants no login
	}
	if resp.StatusCode != http.StatusProxyAuthRequired {
		return resp.StatusCode, refused(resp.StatusCode, target)
	}
	cs := challenges(resp.Header)
	chal, found := ntlmChallenge(cs)
	if !found {
		if _, offered := find(cs, "NTLM"); offered {
			return resp.StatusCode, errors.New("the proxy offers NTLM but answered the negotiation without a challenge")
		}
		return resp.StatusCode, loginFailure(px, offers(cs))
	}
	if !keepAlive(resp) {
		return resp.StatusCode, errNTLMClosed
	}
	auth, err := ntlmAuthenticate(px, chal)
	if err != nil {
		return resp.StatusCode, err
	}
	resp, err = roundTrip(conn, br, target, auth)
	if errors.Is(err, errClosed) {
		return 0, errNTLMClosed
	}
	if err != nil {
		return 0, err
	}
	switch {
	case ok(resp):
		return resp.StatusCode, nil
	case resp.StatusCode == http.StatusProxyAuthRequired:
		return resp.StatusCode, ErrLoginRefused
	}
	return resp.StatusCode, refused(resp.StatusCode, target)
}

// errNTLMClosed is a proxy that hung up between the NTLM messages.
var errNTLMClosed = fmt.Errorf("%w after its NTLM challenge; NTLM needs its three messages on one kept-alive connection", errClosed)
