// Package rdp is the Caddy listener wrapper caddy.listeners.tildegate_rdp:
// it lets native RDP clients share the gateway's web port, and sends each
// one to the server that its connection cookie names (/~~name).
package rdp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tildegate/tildegate/modules/gateway"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(ListenerWrapper{})
}

// Defaults of the listener wrapper's options.
const (
	defaultFirstPacketTimeout = 10 * time.Second
	defaultDialTimeout        = 10 * time.Second
	defaultMaxConnsPerName    = 256

	// defaultMaxConnsPerClient bounds what one IP address can hold,
	// unauthenticated sockets included, so that one client cannot take
	// hundreds of a name's slots. An office behind one NAT address shows
	// as one client: each of its users holds one RDP connection, two
	// for a moment while reconnecting, so 100 lets an office of about 50
	// to 100 concurrent users through; a bigger one behind a single
	// address raises it. It stays below defaultMaxConnsPerName, so that
	// one address alone cannot fill a name.
	defaultMaxConnsPerClient = 100
)

// ListenerWrapper looks at the first byte of every new connection. An RDP
// client (a TPKT + X.224 Connection Request) is taken over: the name in its
// routing cookie or token chooses the server, as tildegate's HTTP handler
// defines it, the routing line is taken out of the request, and the bytes
// are copied both ways until either side closes. Any other connection (TLS,
// HTTP, HTTP/2 with prior knowledge) goes on to Caddy with no byte lost.
//
// It must come before the tls listener wrapper:
//
//	servers {
//	    listener_wrappers {
//	        tildegate_rdp
//	        tls
//	    }
//	}
type ListenerWrapper struct {
	// FirstPacketTimeout is how long a client that started like RDP has,
	// from its connection's accept, to send its whole Connection Request.
	// Default: 10s.
	FirstPacketTimeout caddy.Duration `json:"first_packet_timeout,omitempty"`

	// DialTimeout is how long connecting to the RDP server, or getting a
	// back connection from its agent, may take. Default: 10s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// MaxConnsPerName limits the concurrent RDP connections to each name;
	// more are refused. Default: 256.
	MaxConnsPerName int `json:"max_conns_per_name,omitempty"`

	// MaxConnsPerClient limits the concurrent RDP connections from one IP
	// address, so that one client cannot take a name's every slot nor hold
	// hundreds of sockets. Default (0): 100, enough for an office behind
	// one NAT address. A negative value sets no limit.
	MaxConnsPerClient int `json:"max_conns_per_client,omitempty"`

	logger   *zap.Logger
	afterTLS *sync.Once // warns once of a wrapper placed after tls
	dial     dialFunc
}

// dialFunc connects an RDP client from clientIP to the server named name
// and says where the connection leads.
type dialFunc func(ctx context.Context, name, clientIP string) (net.Conn, string, error)

// liveLoggers are the loggers of the wrappers whose configs are loaded,
// oldest first. Sessions log through the newest, not through the logger of
// the config that accepted them, whose log files a reload may have closed.
var liveLoggers struct {
	sync.Mutex
	list []*zap.Logger
}

// sessionLogger returns the logger for a session's lines.
func (w *ListenerWrapper) sessionLogger() *zap.Logger {
	liveLoggers.Lock()
	defer liveLoggers.Unlock()
	if n := len(liveLoggers.list); n > 0 {
		return liveLoggers.list[n-1]
	}
	return w.logger
}

// Cleanup takes the wrapper's logger out of liveLoggers: Caddy calls it
// when the wrapper's config is unloaded or fails to load.
func (w *ListenerWrapper) Cleanup() error {
	liveLoggers.Lock()
	defer liveLoggers.Unlock()
	liveLoggers.list = slices.DeleteFunc(liveLoggers.list, func(l *zap.Logger) bool { return l == w.logger })
	return nil
}

// CaddyModule returns the Caddy module information.
func (ListenerWrapper) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.tildegate_rdp",
		New: func() caddy.Module { return new(ListenerWrapper) },
	}
}

// Provision applies the defaults and makes the wrapper's logger the one
// sessions log through.
func (w *ListenerWrapper) Provision(ctx caddy.Context) error {
	if w.FirstPacketTimeout < 0 || w.DialTimeout < 0 || w.MaxConnsPerName < 0 {
		return fmt.Errorf("first_packet_timeout, dial_timeout and max_conns_per_name must not be negative")
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering the metrics: %w", err)
	}
	w.logger = ctx.Logger()
	liveLoggers.Lock()
	liveLoggers.list = append(liveLoggers.list, w.logger)
	liveLoggers.Unlock()
	w.afterTLS = new(sync.Once)
	w.dial = gateway.DialRDP
	if w.FirstPacketTimeout == 0 {
		w.FirstPacketTimeout = caddy.Duration(defaultFirstPacketTimeout)
	}
	if w.DialTimeout == 0 {
		w.DialTimeout = caddy.Duration(defaultDialTimeout)
	}
	if w.MaxConnsPerName == 0 {
		w.MaxConnsPerName = defaultMaxConnsPerName
	}
	if w.MaxConnsPerClient == 0 {
		w.MaxConnsPerClient = defaultMaxConnsPerClient
	}
	return nil
}

// WrapListener implements caddy.ListenerWrapper.
func (w *ListenerWrapper) WrapListener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, w: w}
}

// UnmarshalCaddyfile sets up the wrapper from Caddyfile tokens. Syntax:
//
//	tildegate_rdp {
//	    first_packet_timeout <duration>
//	    dial_timeout <duration>
//	    max_conns_per_name <n>
//	    max_conns_per_client <n>|off
//	}
//
// max_conns_per_client off sets no limit per client address (-1 in JSON).
func (w *ListenerWrapper) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		option := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		switch option {
		case "first_packet_timeout", "dial_timeout":
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("%s: want a positive duration, not %q", option, d.Val())
			}
			if option == "dial_timeout" {
				w.DialTimeout = caddy.Duration(dur)
			} else {
				w.FirstPacketTimeout = caddy.Duration(dur)
			}
		case "max_conns_per_client":
			if d.Val() == "off" {
				w.MaxConnsPerClient = -1
				break
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("%s: want a positive number or off, not %q", option, d.Val())
			}
			w.MaxConnsPerClient = n
		case "max_conns_per_name":
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("%s: want a positive number, not %q", option, d.Val())
			}
			w.MaxConnsPerName = n
		default:
			return d.Errf("unrecognized tildegate_rdp option %q", option)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// listener wraps each accepted connection so that its first Read decides
// whether it is RDP. Accept itself never waits for a client's bytes.
type listener struct {
	net.Listener
	w *ListenerWrapper
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		l.w.afterTLS.Do(func() {
			l.w.logger.Error("tildegate_rdp comes after tls in listener_wrappers and sees only TLS; put it before tls")
		})
		return c, nil
	}
	return &conn{Conn: c, w: l.w, accepted: time.Now()}, nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*ListenerWrapper)(nil)
	_ caddy.CleanerUpper    = (*ListenerWrapper)(nil)
	_ caddy.ListenerWrapper = (*ListenerWrapper)(nil)
	_ caddyfile.Unmarshaler = (*ListenerWrapper)(nil)
)
