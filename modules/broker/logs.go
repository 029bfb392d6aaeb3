package broker

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tildegate/tildegate/internal/logburst"
	"github.com/tildegate/tildegate/wire"
)

// refusalLogInterval is how often one reason for one source and name is
// logged.
const refusalLogInterval = time.Minute

// logLimiter lets one log line through per refusal code, source and
// configured name per interval, and counts the lines it held back, so that
// a storm of bad handshakes cannot flood the log. Its state is bounded.
type logLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	entries *lru[logKey, *logburst.Burst]
}

type logKey struct {
	code   wire.Code
	source netip.Prefix
	name   string // lower-case; empty for names that no entry has
}

func newLogLimiter() *logLimiter {
	return &logLimiter{now: time.Now, entries: newLRU[logKey, *logburst.Burst](maxTracked)}
}

// allow reports whether a refusal with code from ip for the entry called
// name (empty when no entry has the name) may be logged now, and how many
// were held back since the last one that was.
func (l *logLimiter) allow(code wire.Code, ip netip.Addr, name string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries.get(logKey{code, sourceOf(ip), name}, func() *logburst.Burst { return new(logburst.Burst) }).Allow(now, refusalLogInterval)
}
