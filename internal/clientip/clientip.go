// Package clientip tells the gateway which address a request comes from
// when Caddy's trusted_proxies is set, whatever trusted_proxies_strict
// says: the rightmost hop that is not a trusted proxy.
//
// Without trusted_proxies_strict, Caddy's client address ({client_ip}) is
// the leftmost valid entry of X-Forwarded-For, which the client itself
// writes: anyone can claim any address that way. Address filters and
// throttles must not trust it. The rightmost untrusted hop is the one the
// last trusted proxy saw, and no client can forge it.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// defaultHeader is where the client address is read from when the server
// names no client_ip_headers.
const defaultHeader = "X-Forwarded-For"

// FromRequest returns the address that r comes from, as Caddy's
// trusted_proxies_strict computes it, whether or not that option is set:
//
//   - when the direct peer is not one of the server's trusted_proxies, or
//     the request did not come through a Caddy server, the peer;
//   - otherwise the rightmost valid address, read right to left in each of
//     the server's client_ip_headers in turn (X-Forwarded-For by default),
//     that is not a trusted proxy; entries that are not addresses are
//     skipped, and ports and IPv6 zones dropped (unlike Caddy, which
//     skips "[2001:db8::1]:443" after a blank and reads further left);
//   - the peer when every entry is a trusted proxy.
//
// The address is unmapped (::ffff:1.2.3.4 is 1.2.3.4) before it is checked
// and returned; the string is its String form. A peer that is not an IP
// address, such as a Unix socket, gives the zero Addr and the peer as
// Caddy writes it ("@" for a socket).
//
// Whether an address is a trusted proxy is decided by Caddy itself, with
// the server's provisioned trusted_proxies source: see trusted.
func FromRequest(r *http.Request) (netip.Addr, string) {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	peer, peerOK := parseHop(peerHost(r.RemoteAddr))
	// Caddy has already decided whether the direct peer is trusted.
	if peerTrusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); srv == nil || !peerTrusted {
		return peerResult(r.RemoteAddr, peer, peerOK)
	}
	headers := srv.ClientIPHeaders
	if len(headers) == 0 {
		headers = []string{defaultHeader}
	}
	for _, name := range headers {
		hops := strings.Split(strings.Join(r.Header.Values(name), ","), ",")
		for _, hop := range slices.Backward(hops) {
			addr, ok := parseHop(hop)
			if ok && !trusted(r, srv, net.JoinHostPort(addr.String(), "0")) {
				return addr, addr.String()
			}
		}
	}
	return peerResult(r.RemoteAddr, peer, peerOK)
}

// peerResult is FromRequest's answer for the direct peer.
func peerResult(remoteAddr string, peer netip.Addr, ok bool) (netip.Addr, string) {
	if ok {
		return peer, peer.String()
	}
	if remoteAddr == "@" {
		return netip.Addr{}, remoteAddr
	}
	return netip.Addr{}, ""
}

// peerHost returns the host of a request's RemoteAddr.
func peerHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// parseHop parses one entry of a client address header as Caddy does: it
// may carry a port, and an IPv6 zone is dropped. The address is unmapped.
func parseHop(hop string) (netip.Addr, bool) {
	hop = strings.TrimSpace(hop)
	if host, _, err := net.SplitHostPort(hop); err == nil {
		hop = host
	}
	hop, _, _ = strings.Cut(hop, "%")
	addr, err := netip.ParseAddr(strings.TrimSpace(hop))
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}

// trusted reports whether srv trusts a peer at remoteAddr as a proxy.
//
// The server's provisioned trusted_proxies source is not exported, and its
// JSON is dropped once provisioned. So Caddy decides, as it does for every
// request: caddyhttp.PrepareRequest sets the trusted_proxy variable of a
// request from its RemoteAddr and the server's ranges, and the probe is a
// request from remoteAddr, with no headers, in r's context (which dynamic
// range sources may use).
func trusted(r *http.Request, srv *caddyhttp.Server, remoteAddr string) bool {
	probe := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/"},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       r.Host,
		RemoteAddr: remoteAddr,
	}
	probe = probe.WithContext(r.Context())
	probe = caddyhttp.PrepareRequest(probe, caddy.NewReplacer(), nil, srv)
	ok, _ := caddyhttp.GetVar(probe.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return ok
}
