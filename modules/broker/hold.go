package broker

import (
	"fmt"
	"strings"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// Disconnect closes the registration of the back entry called name, if an
// agent holds it, and with hold > 0 refuses the name's agent for that long
// (code held, with the time left), as an administrator does to drain a
// server; hold 0 ends an earlier hold. It reports whether the gateway
// has such an entry, and whether an agent was connected.
func (b *Broker) Disconnect(name string, hold time.Duration) (known, connected bool) {
	key := strings.ToLower(name)
	b.mu.Lock()
	if b.claims[key] == nil {
		b.mu.Unlock()
		return false, false
	}
	if hold > 0 {
		b.holds[key] = time.Now().Add(hold)
	} else {
		delete(b.holds, key)
	}
	reg := b.regs[key]
	b.mu.Unlock()
	if reg == nil {
		return true, false
	}
	reason := "the gateway's administrator disconnected this name"
	if hold > 0 {
		reason = fmt.Sprintf("%s and holds it out for %s", reason, hold.Round(time.Second))
	}
	reg.close(wire.CodeHeld, reason)
	return true, true
}

// heldFor returns how much longer the administrator holds the name with
// lower-case key out; 0 when it is not held.
func (b *Broker) heldFor(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.holds[key]
	if !ok {
		return 0
	}
	left := time.Until(until)
	if left <= 0 {
		delete(b.holds, key)
		return 0
	}
	return left
}
