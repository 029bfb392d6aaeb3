package wire

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxRefusalBody bounds how much of a refusal's text is read.
const maxRefusalBody = 4 << 10

// Upgrade sends the upgrade request for /~~name on conn and reads the
// answer. On 101 it returns the answer and a reader that holds any bytes
// the gateway sent after it; any other answer becomes a *Refusal when the
// gateway said why, or an error that quotes its status.
func Upgrade(conn net.Conn, host, name string, hello Hello) (*http.Response, *bufio.Reader, error) {
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
		return nil, nil, &Refusal{Code: code, Reason: reason}
	}
	return nil, nil, fmt.Errorf("the gateway answered %s, not a tildegate upgrade: %.200q", res.Status, reason)
}
