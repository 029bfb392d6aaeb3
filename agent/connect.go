package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tildegate/tildegate/agent/proxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/mux"
)

// Network time limits.
const (
	// dialTimeout bounds a TCP connection to the gateway or the local
	// service.
	dialTimeout = 10 * time.Second
	// handshakeTimeout bounds TLS, the upgrade and the proofs.
	handshakeTimeout = 15 * time.Second
	// tcpKeepAlive lets the system notice a gateway that vanished while a
	// connection waits.
	tcpKeepAlive = 15 * time.Second
)

// dialDefault is the default Options.Dial.
var dialDefault = DialGateway(&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive})

// DialGateway returns an Options.Dial that reaches target, an address of
// the gateway of an entry, through the entry's proxy chain or, when it has
// none, through the proxy HTTPS_PROXY names unless NO_PROXY excludes the
// gateway (see proxy.FromEnvironment), or else directly. The last proxy is
// asked to CONNECT to target. d dials the first proxy, or target when
// there is no proxy.
func DialGateway(d *net.Dialer) func(context.Context, balancebin.BackEntry, string) (net.Conn, error) {
	return func(ctx context.Context, e balancebin.BackEntry, target string) (net.Conn, error) {
		chain, err := proxyChain(e)
		if err != nil {
			return nil, err
		}
		return proxy.Dial(ctx, d, chain, target)
	}
}

// proxyChain returns the proxies through which the agent reaches the
// gateway of e: the entry's chain or, when it has none, the proxy of
// HTTPS_PROXY unless NO_PROXY excludes the gateway's name.
func proxyChain(e balancebin.BackEntry) ([]balancebin.Proxy, error) {
	if len(e.Proxies) > 0 {
		return e.Proxies, nil
	}
	px, err := proxy.FromEnvironment(e.Gateway.String())
	if err != nil || px == nil {
		return nil, err
	}
	return []balancebin.Proxy{*px}, nil
}

// tlsConfig returns the TLS settings shared by every connection to a
// gateway; connect adds the server name.
func tlsConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: opts.Insecure,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the gateway's root certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading the gateway's root certificates: no PEM certificate in %s", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// gatewayConn is a connection to the gateway.
type gatewayConn struct {
	net.Conn
	// tls is its TLS state, nil without TLS.
	tls *tls.ConnectionState
	// under is the connection under its TLS, nil without TLS.
	under *mux.HoldConn
}

// closer returns what closes the connection at once: under TLS the
// connection beneath, as TLS's own close would first send its
// close_notify alert, behind a batch of frames that the gateway may not
// be reading.
func (c gatewayConn) closer() io.Closer {
	if c.under != nil {
		return c.under
	}
	return c.Conn
}

// connect opens a connection to target, an address of e's gateway,
// through dial, with TLS when e.UseTLS() verified against the gateway's
// host.
func connect(ctx context.Context, dial func(context.Context, balancebin.BackEntry, string) (net.Conn, error),
	base *tls.Config, e balancebin.BackEntry, target string) (gatewayConn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := dial(ctx, e, target)
	if err != nil {
		return gatewayConn{}, fmt.Errorf("connecting to the gateway %s%s: %w", e.Gateway, via(e, target), err)
	}
	if !e.UseTLS() {
		return gatewayConn{Conn: conn}, nil
	}
	cfg := base.Clone()
	cfg.ServerName = e.Gateway.Host
	under := mux.NewHoldConn(conn)
	tc := tls.Client(under, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return gatewayConn{}, fmt.Errorf("TLS with the gateway %s%s: %w", e.Gateway, via(e, target), err)
	}
	cs := tc.ConnectionState()
	return gatewayConn{Conn: tc, tls: &cs, under: under}, nil
}

// via names target in an error about e's gateway, when it is an address
// of the gateway rather than its name.
func via(e balancebin.BackEntry, target string) string {
	if target == e.Gateway.String() {
		return ""
	}
	return " at " + target
}

// hostHeader returns the Host of the upgrade request: the gateway's host,
// with its port unless it is the default of the scheme.
func hostHeader(e balancebin.BackEntry) string {
	tlsOn := e.UseTLS()
	if tlsOn && e.Gateway.Port == 443 || !tlsOn && e.Gateway.Port == 80 {
		if strings.Contains(e.Gateway.Host, ":") {
			return "[" + e.Gateway.Host + "]"
		}
		return e.Gateway.Host
	}
	return net.JoinHostPort(e.Gateway.Host, strconv.Itoa(int(e.Gateway.Port)))
}

// closeOnDone closes conn when ctx ends, which unblocks any read or write
// on it. The returned function stops that and reports whether it had not
// happened yet.
func closeOnDone(ctx context.Context, conn io.Closer) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.Close() })
}
