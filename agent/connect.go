package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tildegate/tildegate/agent/proxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
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

// DialGateway returns an Options.Dial that reaches the gateway of an entry
// through the entry's proxy chain or, when it has none, through the proxy
// HTTPS_PROXY names unless NO_PROXY excludes the gateway (see
// proxy.FromEnvironment), or else directly. d dials the first proxy, or
// the gateway when there is no proxy.
func DialGateway(d *net.Dialer) func(context.Context, balancebin.BackEntry) (net.Conn, error) {
	return func(ctx context.Context, e balancebin.BackEntry) (net.Conn, error) {
		target := e.Gateway.String()
		chain := e.Proxies
		if len(chain) == 0 {
			px, err := proxy.FromEnvironment(target)
			if err != nil {
				return nil, err
			}
			if px != nil {
				chain = []balancebin.Proxy{*px}
			}
		}
		return proxy.Dial(ctx, d, chain, target)
	}
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

// connect opens a connection to e's gateway through dial, with TLS when
// e.UseTLS(), and returns it with its TLS state (nil without TLS).
func connect(ctx context.Context, dial func(context.Context, balancebin.BackEntry) (net.Conn, error),
	base *tls.Config, e balancebin.BackEntry) (net.Conn, *tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, err := dial(ctx, e)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the gateway %s: %w", e.Gateway, err)
	}
	if !e.UseTLS() {
		return conn, nil, nil
	}
	cfg := base.Clone()
	cfg.ServerName = e.Gateway.Host
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("TLS with the gateway %s: %w", e.Gateway, err)
	}
	cs := tc.ConnectionState()
	return tc, &cs, nil
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
func closeOnDone(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.Close() })
}
