package broker

import (
	"sync"
	"time"
)

// Throttling of failed handshakes per source address.
const (
	throttleFailures = 5                // failures within throttleWindow ...
	throttleWindow   = time.Minute      // ... block the address ...
	throttleBlock    = 30 * time.Second // ... for this long
)

// throttle counts failed handshakes per source address and blocks an
// address that fails too often, so that passwords cannot be tried quickly.
type throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	addrs map[string]*failures
}

type failures struct {
	count        int
	windowStart  time.Time
	blockedUntil time.Time
	logged       bool // the block has been logged
}

func newThrottle() *throttle {
	return &throttle{now: time.Now, addrs: make(map[string]*failures)}
}

// blocked reports whether addr is blocked now, and whether this is the
// first refusal of the block (the one to log).
func (t *throttle) blocked(addr string) (blocked, first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.addrs[addr]
	if f == nil || !t.now().Before(f.blockedUntil) {
		return false, false
	}
	first = !f.logged
	f.logged = true
	return true, first
}

// fail records a failed handshake from addr.
func (t *throttle) fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweep(now)
	f := t.addrs[addr]
	if f == nil || now.Sub(f.windowStart) > throttleWindow {
		f = &failures{windowStart: now}
		t.addrs[addr] = f
	}
	if f.count++; f.count >= throttleFailures {
		f.blockedUntil = now.Add(throttleBlock)
		f.logged = false
		f.count = 0
		f.windowStart = now
	}
}

// sweep forgets addresses that are neither blocked nor in a window.
func (t *throttle) sweep(now time.Time) {
	for addr, f := range t.addrs {
		if now.Sub(f.windowStart) > throttleWindow && !now.Before(f.blockedUntil) {
			delete(t.addrs, addr)
		}
	}
}
