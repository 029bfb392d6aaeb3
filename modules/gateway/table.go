package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/modules/broker"
)

// route is what one /~~name leads to.
type route struct {
	name   string // as configured
	origin string // where it was defined, for error messages

	// prefix is "/~~" + name, and prefixHeader the same as a header value
	// shared by every request (read-only once built).
	prefix       string
	prefixHeader []string

	// proxy is Caddy's reverse proxy for a direct entry; nil for a back
	// entry or a name that has only RDP targets.
	proxy        *reverseproxy.Handler
	backendHosts []string

	back       *broker.Entry
	rdpTargets []balancebin.HostPort
}

// table is one generation of the routing table. Requests hold a reference
// while they run, so a table that has been replaced is cleaned up only once
// its last request (or websocket) has finished.
type table struct {
	routes map[string]*route // by lower-case name

	inflight atomic.Int64
	retired  atomic.Bool
	once     sync.Once
	cancel   context.CancelFunc // ends the table's own caddy.Context

	// backEntries are claimed from broker while the table is current.
	broker      *broker.Broker
	backEntries []broker.Entry
}

// release ends one request's use of the table.
func (t *table) release() {
	if t.inflight.Add(-1) == 0 && t.retired.Load() {
		t.once.Do(t.cleanup)
	}
}

// retire marks the table replaced and gives up its back entries; it is
// cleaned up at once if idle, or by the last request that still uses it.
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

func (t *table) cleanup() {
	for _, rt := range t.routes {
		if rt.proxy != nil {
			_ = rt.proxy.Cleanup()
		}
	}
	t.cancel()
}

// tableRef holds the current table.
type tableRef struct {
	current atomic.Pointer[table]
	// closed is set when the handler is cleaned up: no newer table will
	// come, and requests that the old server still serves during a config
	// reload keep using the last one, as Caddy's own handlers do.
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

// close retires the last table for good; see closed.
func (r *tableRef) close() {
	r.closed.Store(true)
	if t := r.current.Load(); t != nil {
		t.retire()
	}
}

// swap installs next and retires the table it replaces.
func (r *tableRef) swap(next *table) {
	if old := r.current.Swap(next); old != nil {
		old.retire()
	}
}
