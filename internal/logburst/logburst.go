// Package logburst rate-limits the log lines of events that tend to
// repeat: one line per interval, which says how many occurrences went
// unlogged before it.
package logburst

import (
	"sync"
	"time"
)

// Burst is the log state of one kind of event. The zero value is ready.
type Burst struct {
	mu     sync.Mutex
	last   time.Time // when it was last logged
	missed int       // occurrences since then
}

// Allow reports whether an occurrence at now should be logged, at most
// once per interval, and if so how many occurrences went unlogged since
// the last line.
func (b *Burst) Allow(now time.Time, interval time.Duration) (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.Sub(b.last) < interval {
		b.missed++
		return false, 0
	}
	missed := b.missed
	b.last, b.missed = now, 0
	return true, missed
}
