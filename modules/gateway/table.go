package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/modules/broker"
)

// route is what one /~~name leads to. A route outlives the table that made
// it while newer tables define the name the same way (so a balance.bin
// edit keeps the connection pools and health state of names it did not
// touch) or while requests and websockets still use it.
type route struct {
	name   string // as configured
	origin string // where it was defined, for error messages
	inline bool   // defined in the handler's config, not in a balance file

	// prefix is "/~~" + name, and prefixHeader the same as a header value
	// shared by every request: read-only once built.
	prefix       string
	prefixHeader []string

	// fingerprint is the route's whole definition: equal fingerprints can
	// share one route.
	fingerprint string

	// proxyJSON is Caddy's reverse proxy handler for the name, which
	// handler provisions once; nil for a name that has only RDP targets.
	proxyJSON     []byte
	upstreamDials []string      // the proxy's upstream addresses
	backendHosts  []string      // their hosts
	parent        caddy.Context // the context the proxy is provisioned under

	// ready is the provisioned proxy: read without a lock by every
	// request; set once, under proxyMu.
	ready    atomic.Pointer[reverseproxy.Handler]
	proxyMu  sync.Mutex
	proxyErr error
	cancel   context.CancelFunc // ends the proxy's own caddy.Context, cleaning up its modules
	released bool               // the last user let go: no proxy any more

	back       *broker.Entry
	rdpTargets []balancebin.HostPort

	users atomic.Int64 // tables that list the route, and requests that use it
}

// handler returns the name's reverse proxy, provisioning it on first use.
// It is nil, with no error, for a name that has only RDP targets.
func (rt *route) handler() (*reverseproxy.Handler, error) {
	if p := rt.ready.Load(); p != nil || rt.proxyJSON == nil {
		return p, nil
	}
	rt.proxyMu.Lock()
	defer rt.proxyMu.Unlock()
	if p := rt.ready.Load(); p != nil || rt.proxyErr != nil {
		return p, rt.proxyErr
	}
	if rt.released {
		// Its configuration is gone: a request that the old server still
		// takes during a reload is not worth provisioning for.
		return nil, errRetired
	}
	ctx, cancel := caddy.NewContext(rt.parent)
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", rt.proxyJSON)
	if err != nil {
		cancel()
		rt.proxyErr = fmt.Errorf("%s: %w", rt.origin, err)
		return nil, rt.proxyErr
	}
	p := mod.(*reverseproxy.Handler)
	rt.cancel = cancel
	rt.ready.Store(p)
	return p, nil
}

// errRetired is a route first used after its configuration was unloaded.
var errRetired = errors.New("the configuration that defined the name was replaced")

// hold counts one more user of the route.
func (rt *route) hold() { rt.users.Add(1) }

// release ends one use; the last one cleans the route up.
func (rt *route) release() {
	if rt.users.Add(-1) != 0 {
		return
	}
	rt.proxyMu.Lock()
	cancel := rt.cancel
	if rt.released {
		cancel = nil // a late user came and went: cleaned up already
	}
	rt.released = true
	rt.proxyMu.Unlock()
	if cancel != nil {
		cancel() // cleans up the proxy's modules
	}
}

// table is one generation of the routing table. A request holds the table
// only while it looks its route up, then holds the route.
type table struct {
	routes map[string]*route // by lower-case name

	inflight atomic.Int64
	retired  atomic.Bool
	once     sync.Once

	// backEntries are claimed from broker while the table is current.
	broker      *broker.Broker
	backEntries []broker.Entry
}

// release ends one lookup's use of the table.
func (t *table) release() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		t.once.Do(t.cleanup)
	}
}

// retire marks the table replaced and gives up its back entries; it lets
// go of its routes at once if idle, or after the last lookup on it.
func (t *table) retire() {
	if !t.retired.CompareAndSwap(false, true) {
		return
	}
	if t.broker != nil {
		t.broker.Unclaim(t.backEntries)
	}
	if t.inflight.Load() == 0 {
		t.once.Do(t.cleanup)
	}
}

// cleanup lets go of the table's routes.
func (t *table) cleanup() {
	for _, rt := range t.routes {
		rt.release()
	}
}

// tableRef holds the current table.
type tableRef struct {
	current atomic.Pointer[table]
	// closed is set when the handler is cleaned up: no newer table will
	// come. Requests that the old server still takes during a config reload
	// keep using the last table, whose proxies keep working after cleanup
	// as Caddy's own handlers do.
	closed atomic.Bool
}

// acquire returns the current table with a reference taken; the caller must
// call release on it.
func (r *tableRef) acquire() *table {
	for {
		t := r.current.Load()
		t.inflight.Add(1)
		if !t.retired.Load() || r.closed.Load() {
			return t
		}
		t.release()
	}
}

// swap installs next and retires the table it replaces.
func (r *tableRef) swap(next *table) {
	if old := r.current.Swap(next); old != nil {
		old.retire()
	}
}

// close retires the last table for good; see closed.
func (r *tableRef) close() {
	r.closed.Store(true)
	if t := r.current.Load(); t != nil {
		t.retire()
	}
}
