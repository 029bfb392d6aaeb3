package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Resolution limits.
const (
	// DefaultResolveInterval is the default of Options.ResolveInterval.
	DefaultResolveInterval = 60 * time.Second
	// resolveTimeout bounds one lookup.
	resolveTimeout = 10 * time.Second
	// minResolveGap is the least time between two lookups of a host that
	// lost connections asked for, so that a gateway going down, which
	// drops every entry's connection to it at once, costs one lookup.
	minResolveGap = time.Second
)

// LookupResolver returns an Options.Lookup that asks r; nil means the
// system's resolver.
func LookupResolver(r *net.Resolver) func(context.Context, string) ([]netip.Addr, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		return r.LookupNetIP(ctx, "ip", host)
	}
}

// DNSServer returns a resolver that asks the DNS server at addr
// (host:port) for every name, rather than the system's resolver.
func DNSServer(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// Addresses returns the addresses of host, sorted and without repeats, as
// the agent's runners use them: an IP literal is itself.
func Addresses(ctx context.Context, lookup func(context.Context, string) ([]netip.Addr, error), host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("resolving %s: no such host", host)
		}
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolving %s: no address", host)
	}
	return addrs, nil
}

// resolution is one lookup of a host.
type resolution struct {
	addrs []netip.Addr // sorted; empty when err is set
	err   error
	at    time.Time
	next  time.Time // when the next periodic lookup is due
}

// resolver resolves the gateways' hosts for every entry of the agent: one
// lookup per host and interval, whatever the number of entries that use
// it.
type resolver struct {
	lookup   func(context.Context, string) ([]netip.Addr, error)
	interval time.Duration
	log      *zap.Logger

	mu    sync.Mutex
	hosts map[string]*hostWatch // by lower-case host
}

// newResolver returns a resolver that looks hosts up with lookup every
// interval.
func newResolver(lookup func(context.Context, string) ([]netip.Addr, error), interval time.Duration, log *zap.Logger) *resolver {
	return &resolver{lookup: lookup, interval: interval, log: log, hosts: make(map[string]*hostWatch)}
}

// hostWatch resolves one host for as long as entries use it.
type hostWatch struct {
	host string
	res  *resolver

	// users counts the entries that watch the host; res.mu guards it.
	users  int
	cancel context.CancelFunc
	done   chan struct{}
	soon   chan struct{} // asks for a lookup before the interval is over

	mu      sync.Mutex
	last    *resolution   // nil before the first lookup
	changed chan struct{} // closed, and replaced, after each lookup
	logged  time.Time     // when a failure was last logged
}

// watch returns the watch of host, starting it for the first user; each
// call needs a release.
func (r *resolver) watch(host string) *hostWatch {
	key := strings.ToLower(host)
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.hosts[key]
	if w == nil {
		// The watch outlives the entry that starts it: it ends when its
		// last user releases it, as every entry does when the agent stops.
		wctx, cancel := context.WithCancel(context.Background())
		w = &hostWatch{host: host, res: r, cancel: cancel, done: make(chan struct{}),
			soon: make(chan struct{}, 1), changed: make(chan struct{})}
		r.hosts[key] = w
		go w.run(wctx)
	}
	w.users++
	return w
}

// release ends a use of the watch; the last one stops it.
func (w *hostWatch) release() {
	r := w.res
	r.mu.Lock()
	w.users--
	last := w.users == 0
	if last {
		delete(r.hosts, strings.ToLower(w.host))
	}
	r.mu.Unlock()
	if last {
		w.cancel()
		<-w.done
	}
}

// current returns the last lookup (nil before the first one) and a channel
// closed after the next one.
func (w *hostWatch) current() (*resolution, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.changed
}

// refresh asks for a lookup now, rather than at the end of the interval:
// a connection to one of the host's addresses was lost.
func (w *hostWatch) refresh() {
	select {
	case w.soon <- struct{}{}:
	default:
	}
}

// run looks the host up every interval, and sooner when asked, until ctx
// ends.
func (w *hostWatch) run(ctx context.Context) {
	defer close(w.done)
	interval := w.res.interval
	for {
		addrs, err := Addresses(ctx, w.res.lookup, w.host)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		w.last = &resolution{addrs: addrs, err: err, at: now, next: now.Add(interval)}
		close(w.changed)
		w.changed = make(chan struct{})
		logIt := err != nil && now.Sub(w.logged) >= interval/2
		if logIt {
			w.logged = now
		}
		w.mu.Unlock()
		if logIt {
			w.res.log.Warn(fmt.Sprintf("%v; the entries of this gateway keep their connections, retrying in %s", err, round(interval)),
				zap.String("gateway_host", w.host))
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-w.soon:
			t.Stop()
			if !sleep(ctx, min(minResolveGap, interval)) {
				return
			}
		}
	}
}
