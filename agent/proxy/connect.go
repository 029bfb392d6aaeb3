package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/tildegate/tildegate/internal/pipe"
)

// maxDrain bounds the body of a 407 read to keep its connection for the
// next message of an NTLM login.
const maxDrain = 64 << 10

// errClosed is a proxy that hung up instead of answering.
var errClosed = errors.New("the proxy closed the connection")

// connectRequest returns a CONNECT for target (host:port) with the
// Proxy-Authorization auth when auth is not empty. It asks to keep the
// connection: an NTLM login takes three messages on one connection, and
// the tunnel is that same connection.
func connectRequest(target, auth string) string {
	var b strings.Builder
	b.WriteString("CONNECT " + target + " HTTP/1.1\r\n")
	b.WriteString("Host: " + target + "\r\n")
	if auth != "" {
		b.WriteString("Proxy-Authorization: " + auth + "\r\n")
	}
	b.WriteString("Proxy-Connection: Keep-Alive\r\n\r\n")
	return b.String()
}

// hungUp reports whether err is the peer closing the connection: an end of
// input, or a reset when it closed with our request unread.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip sends one CONNECT for target on conn and reads the proxy's
// answer from br, which reads conn. The body of the answer is left unread.
func roundTrip(conn net.Conn, br *bufio.Reader, target, auth string) (*http.Response, error) {
	if _, err := io.WriteString(conn, connectRequest(target, auth)); err != nil {
		if hungUp(err) {
			return nil, fmt.Errorf("%w before CONNECT %s was sent", errClosed, target)
		}
		return nil, fmt.Errorf("sending CONNECT %s: %w", target, err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if hungUp(err) {
			return nil, fmt.Errorf("%w instead of answering CONNECT %s", errClosed, target)
		}
		return nil, fmt.Errorf("reading the answer to CONNECT %s: %w", target, err)
	}
	return resp, nil
}

// ok reports whether resp opened the tunnel. Its body is then not read:
// what follows the header belongs to the tunnel.
func ok(resp *http.Response) bool { return resp.StatusCode/100 == 2 }

// keepAlive reads the body of a refusal so that the connection can carry
// the next CONNECT, and reports whether it can: the proxy did not say it
// closes and the body was small enough to skip.
func keepAlive(resp *http.Response) bool {
	if resp.Close || hasToken(resp.Header.Values("Proxy-Connection"), "close") {
		return false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain+1))
	return err == nil && n <= maxDrain
}

// hasToken reports whether a comma-separated header holds token, ignoring
// case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refused describes a status other than 2xx and 407 for target.
func refused(status int, target string) error {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return fmt.Errorf("the proxy could not reach %s", target)
	case http.StatusForbidden, http.StatusMethodNotAllowed:
		return fmt.Errorf("the proxy does not allow a tunnel to %s", target)
	}
	return fmt.Errorf("the proxy did not open a tunnel to %s", target)
}

// withBuffered returns conn, wrapped so that the bytes br holds past the
// proxy's answer come first.
func withBuffered(conn net.Conn, br *bufio.Reader) net.Conn {
	if br.Buffered() == 0 {
		return conn
	}
	return pipe.ReaderConn(conn, br)
}
