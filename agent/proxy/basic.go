package proxy

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/http"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// basicAuth returns the Proxy-Authorization value of a Basic login.
func basicAuth(px balancebin.Proxy) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(px.User+":"+px.Password))
}

// connectBasic opens a tunnel to target through a proxy with a Basic
// login, or without a login when px has none.
//
// The login goes with the first CONNECT instead of waiting for a 407: every
// back connection is a new CONNECT, so waiting would cost each of them a
// round trip, and the credentials are written for this very proxy. A 407
// in answer is then a refused login (or a proxy that does not take Basic).
func connectBasic(conn net.Conn, br *bufio.Reader, px balancebin.Proxy, target string) (int, error) {
	auth := ""
	if px.Auth == balancebin.ProxyAuthBasic {
		auth = basicAuth(px)
	}
	resp, err := roundTrip(conn, br, target, auth)
	if err != nil {
		return 0, err
	}
	if ok(resp) {
		return resp.StatusCode, nil
	}
	if resp.StatusCode == http.StatusProxyAuthRequired {
		return resp.StatusCode, loginFailure(px, offers(challenges(resp.Header)))
	}
	return resp.StatusCode, refused(resp.StatusCode, target)
}
