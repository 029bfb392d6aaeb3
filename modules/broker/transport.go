package broker

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/tildegate/tildegate/wire"
)

func init() {
	caddy.RegisterModule(Transport{})
}

// defaultIdleConnsPerHost keeps enough sessions for reuse under load:
// each new one costs a round trip to the agent and its dial of the local
// service.
const defaultIdleConnsPerHost = 64

// Transport is a reverse proxy transport whose connections are sessions
// through the agent that holds Name (streams of its multiplexed back
// connections): requests to a back entry go through Caddy's reverse proxy
// like any other, over the tunnel. It speaks HTTP/1.1 with keep-alive, so
// a session serves many requests.
type Transport struct {
	// Name is the back entry whose agent carries the requests.
	Name string `json:"name"`

	// HTTP holds the keep-alive, timeout and buffer options of Caddy's HTTP
	// transport; its dialer and TLS are replaced by the tunnel.
	HTTP *reverseproxy.HTTPTransport `json:"http,omitempty"`

	broker *Broker
}

// CaddyModule returns the Caddy module information.
func (Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.tildegate",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision sets up the HTTP transport and points its dialer at the broker.
func (t *Transport) Provision(ctx caddy.Context) error {
	if t.Name == "" {
		return fmt.Errorf("tildegate transport: name is required")
	}
	if t.HTTP == nil {
		t.HTTP = new(reverseproxy.HTTPTransport)
	}
	if t.HTTP.TLS != nil {
		return fmt.Errorf("tildegate transport for %s: tls is not allowed; the tunnel carries plain HTTP to the agent", t.Name)
	}
	t.HTTP.Versions = []string{"1.1"}
	if t.HTTP.KeepAlive == nil {
		t.HTTP.KeepAlive = new(reverseproxy.KeepAlive)
	}
	if t.HTTP.KeepAlive.MaxIdleConnsPerHost == 0 {
		t.HTTP.KeepAlive.MaxIdleConnsPerHost = defaultIdleConnsPerHost
	}
	if err := t.HTTP.Provision(ctx); err != nil {
		return err
	}
	t.broker = Acquire(ctx.Logger())
	// The dialer keeps its own broker: a request that a cleaned-up
	// transport still carries must not find t.broker gone.
	b, name := t.broker, t.Name
	t.HTTP.Transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return b.Dial(ctx, name, wire.KindHTTP)
	}
	t.HTTP.Transport.DialTLSContext = nil
	t.HTTP.Transport.Proxy = nil
	// The broker limits the sessions per name, and answers a request
	// beyond the limit at once rather than queue it.
	t.HTTP.Transport.MaxConnsPerHost = 0
	return nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.HTTP.RoundTrip(req)
}

// Cleanup closes idle back connections and releases the broker.
func (t *Transport) Cleanup() error {
	if t.broker == nil {
		return nil
	}
	t.broker = nil
	Release()
	return t.HTTP.Cleanup()
}

// UnmarshalCaddyfile sets up the transport from Caddyfile tokens:
//
//	transport tildegate <name>
func (t *Transport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // transport name
	if !d.NextArg() {
		return d.ArgErr()
	}
	t.Name = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Transport)(nil)
	_ caddy.CleanerUpper    = (*Transport)(nil)
	_ http.RoundTripper     = (*Transport)(nil)
	_ caddyfile.Unmarshaler = (*Transport)(nil)
)
