package wire

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRefusalBody bounds how much of a refusal's text is read.
const maxRefusalBody = 4 << 10

// Upgrade sends the upgrade request for /~~name on conn, with hello as its
// hello header, and reads the answer. On 101 it returns the answer and a
// reader that holds any bytes the gateway sent after it; any other answer
// becomes a *Refusal when the gateway said why, or an error that quotes its
// status.
func Upgrade(conn net.Conn, host, name, hello string) (*http.Response, *bufio.Reader, error) {
	req := fmt.Sprintf("GET /~~%s HTTP/1.1\r\nHost: %s\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: %s\r\n\r\n",
		name, host, UpgradeToken, HeaderHello, hello)
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the gateway's answer: %w", err)
	}
	if res.StatusCode == http.StatusSwitchingProtocols && strings.EqualFold(res.Header.Get("Upgrade"), UpgradeToken) {
		return res, br, nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxRefusalBody))
	res.Body.Close()
	reason := strings.TrimSpace(string(body))
	if code, ok := ParseCode(res.Header.Get(HeaderRefusal)); ok {
		return nil, nil, &Refusal{Code: code, Reason: reason, RetryAfter: retryAfter(res.Header.Get("Retry-After"))}
	}
	return nil, nil, fmt.Errorf("the gateway answered %s, not a tildegate upgrade: %s", res.Status, Quote(reason))
}

// MaxRetryAfter caps the wait a refusal's Retry-After may ask for: it is
// not authenticated, so whoever forges one must not park an agent for
// longer.
const MaxRetryAfter = 10 * time.Minute

// retryAfter reads a Retry-After header in seconds, capped at
// MaxRetryAfter; 0 when there is none.
func retryAfter(value string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, int(MaxRetryAfter/time.Second))) * time.Second
}
