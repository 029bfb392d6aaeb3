package agent

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// Defaults of Options.
const (
	// DefaultMinBackoff is the default of Options.MinBackoff.
	DefaultMinBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff is the default of Options.MaxBackoff.
	DefaultMaxBackoff = 30 * time.Second
	// DefaultSlowRetry is the default of Options.SlowRetry.
	DefaultSlowRetry = 30 * time.Second
)

// Options configure an Agent. The zero value is usable.
type Options struct {
	// CAFile names a PEM file of root certificates that verify the
	// gateway's TLS certificate; empty means the system's roots.
	CAFile string
	// Insecure skips the verification of the gateway's certificate.
	Insecure bool
	// OpenFiles is the number of open files the agent budgets for: it
	// refuses a session, which costs one, when it holds nearly that many.
	// 0 means the process's limit.
	OpenFiles int
	// Version names the agent's software and version for the gateways'
	// lists of agents, e.g. "tildegate-agent/1.2.0"; it is not sent when
	// empty or not a valid hello field (see wire.ValidAgent).
	Version string
	// Logger receives the agent's logs; nil discards them.
	Logger *zap.Logger
	// Dial opens a TCP connection to target, one address of the gateway
	// of e ("ip:port", or e.Gateway's "host:port" when the agent cannot
	// resolve it); the agent adds TLS on top when e.UseTLS(), verified
	// against e.Gateway's host. Nil means DialGateway with a dialer of its
	// own: through the entry's proxies, or HTTPS_PROXY.
	Dial func(ctx context.Context, e balancebin.BackEntry, target string) (net.Conn, error)
	// MinBackoff and MaxBackoff bound the exponential delay between
	// attempts to register; 0 means DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// SlowRetry is the delay after a permanent refusal (see
	// wire.Code.Permanent); 0 means DefaultSlowRetry.
	SlowRetry time.Duration
	// Lookup returns the addresses of a gateway's host, IPv4 and IPv6;
	// nil means the system's resolver (see LookupResolver and DNSServer).
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// ResolveInterval is how often the agent looks the gateways' hosts up
	// again, to follow addresses that join or leave their DNS; it also
	// does when a connection to a gateway is lost. 0 means
	// DefaultResolveInterval.
	ResolveInterval time.Duration
}

// withDefaults returns the options with every unset field at its default.
func (o Options) withDefaults() Options {
	if o.OpenFiles <= 0 {
		o.OpenFiles = openFileLimit()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if !wire.ValidAgent(o.Version) {
		o.Version = ""
	}
	if o.Dial == nil {
		o.Dial = dialDefault
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.SlowRetry <= 0 {
		o.SlowRetry = DefaultSlowRetry
	}
	if o.Lookup == nil {
		o.Lookup = LookupResolver(nil)
	}
	if o.ResolveInterval <= 0 {
		o.ResolveInterval = DefaultResolveInterval
	}
	return o
}
