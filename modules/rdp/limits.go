package rdp

import (
	"strings"
	"sync"
)

// nameLimits counts the RDP connections of each name. The count lives as
// long as the process: RDP streams outlive the config that accepted them.
type nameLimits struct {
	mu     sync.Mutex
	active map[string]int // by lower-case name
}

// connsPerName is the count of every listener wrapper.
var connsPerName = &nameLimits{active: make(map[string]int)}

// acquire counts one more connection to name unless it already has max;
// the caller calls release when the connection ends.
func (l *nameLimits) acquire(name string, max int) (release func(), ok bool) {
	key := strings.ToLower(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active[key] >= max {
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
