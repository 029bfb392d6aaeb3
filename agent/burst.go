package agent

import (
	"sync"
	"time"
)

// burstInterval is the least time between two logs of the same failure.
const burstInterval = 30 * time.Second

// burst rate-limits the log of a failure that tends to repeat: one line
// per burst, which says how many occurrences went unlogged before it.
type burst struct {
	mu     sync.Mutex
	last   time.Time // when it was last logged
	missed int       // occurrences since then
}

// allow reports whether an occurrence at now should be logged and, if so,
// how many occurrences went unlogged since the last line.
func (b *burst) allow(now time.Time) (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.Sub(b.last) < burstInterval {
		b.missed++
		return false, 0
	}
	missed := b.missed
	b.last, b.missed = now, 0
	return true, missed
}
