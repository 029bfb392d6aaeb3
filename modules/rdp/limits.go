package rdp

import (
	"sync"
)

// connCounts counts the RDP connections by a key: a name or a client
// address. The counts live as long as the process: RDP streams outlive the
// config that accepted them.
type connCounts struct {
	mu     sync.Mutex
	active map[string]int
}

// Counts shared by every listener wrapper.
var (
	connsPerName   = &connCounts{active: make(map[string]int)} // by lower-case name
	connsPerClient = &connCounts{active: make(map[string]int)} // by client IP address
)

// acquire counts one more connection for key unless it already has max
// (0 or less: no limit); the caller calls release when the connection ends.
func (l *connCounts) acquire(key string, max int) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max > 0 && l.active[key] >= max {
		return nil, false
	}
	l.active[key]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.active[key]--; l.active[key] == 0 {
			delete(l.active, key)
		}
	}, true
}
