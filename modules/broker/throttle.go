package broker

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// The throttle's limits. Every control handshake is an attempt from the
// moment it is admitted, whatever becomes of it; only a success gives its
// tokens back. So parallel attempts gain nothing, and a refusal cannot be
// told from a guess that has not been answered yet.
const (
	// maxInFlight is how many control handshakes one source (an IPv4
	// address or an IPv6 /64) may have in flight at once.
	maxInFlight = 8
	// A source may make pairBurst attempts at one name at once, and one
	// more every pairRefill.
	pairBurst  = 5
	pairRefill = 2 * time.Minute
	// All sources together may make nameBurst attempts at one name at
	// once, and one more every nameRefill: guessing from many addresses
	// gets a few dozen guesses per name per hour. The source that last
	// registered the name is spared this budget (its own still applies),
	// so attackers elsewhere cannot keep the name's agent out.
	nameBurst  = 10
	nameRefill = time.Minute
	// maxTracked bounds the sources and names the throttle remembers; the
	// least recently seen are forgotten first.
	maxTracked = 1 << 16
)

// bucket is a token bucket: burst tokens, one more every refill.
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// settle brings the tokens up to date.
func (b *bucket) settle(now time.Time, burst int, refill time.Duration) {
	if b.at.IsZero() {
		b.tokens, b.at = float64(burst), now
		return
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)/float64(refill))
		b.at = now
	}
}

// take takes a token, or says how long until there is one.
func (b *bucket) take(now time.Time, burst int, refill time.Duration) (bool, time.Duration) {
	b.settle(now, burst, refill)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(refill))
}

// give returns a token taken before.
func (b *bucket) give(burst int) { b.tokens = min(float64(burst), b.tokens+1) }

// pairKey is a source and a name.
type pairKey struct {
	source netip.Prefix
	name   string
}

// throttle admits control handshakes. Its state is bounded and each call
// costs O(1).
type throttle struct {
	mu       sync.Mutex
	now      func() time.Time
	inFlight map[netip.Prefix]int
	pairs    *lru[pairKey, *bucket]
	names    *lru[string, *nameState]
}

// nameState is a name's budget, and the source that last registered it.
type nameState struct {
	bucket
	owner netip.Prefix
}

func newThrottle() *throttle {
	return &throttle{
		now:      time.Now,
		inFlight: make(map[netip.Prefix]int),
		pairs:    newLRU[pairKey, *bucket](maxTracked),
		names:    newLRU[string, *nameState](maxTracked),
	}
}

// sourceOf is what the throttle counts by: an IPv4 address, or the /64 of
// an IPv6 address, since one IPv6 host commonly has a whole /64.
func sourceOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64) // the zero Prefix for an invalid address: one shared source
	return p
}

// throttled is a refusal by the throttle: why, and when to try again.
type throttled struct {
	budget     string // which budget was spent: in-flight, source-name or name
	reason     string
	retryAfter time.Duration
}

// admission is one admitted control handshake.
type admission struct {
	t       *throttle
	source  netip.Prefix
	pairKey pairKey
	pair    *bucket // nil when no token of it was taken
	name    *nameState
	// nameToken is set when the admission took a token of the name's
	// budget.
	nameToken bool
	// resumeOnly is set when the budgets were spent but the hello resumes
	// a session: only a valid resume proof lets the handshake on.
	resumeOnly bool
	once       sync.Once
}

// admit counts a control handshake from ip for name (a lower-case key)
// before anything of it is answered. resumes says that the hello names a
// session the broker knows, which may go on without budget.
func (t *throttle) admit(ip netip.Addr, name string, resumes bool) (*admission, *throttled) {
	source := sourceOf(ip)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight[source] >= maxInFlight {
		return nil, &throttled{budget: "in-flight", reason: fmt.Sprintf("too many handshakes in flight from this address (at most %d)", maxInFlight), retryAfter: time.Second}
	}
	key := pairKey{source, name}
	pair := t.pairs.get(key, func() *bucket { return new(bucket) })
	ns := t.names.get(name, func() *nameState { return new(nameState) })
	a := &admission{t: t, source: source, pairKey: key, name: ns}
	owner := ns.owner.IsValid() && ns.owner == source
	switch ok, wait := pair.take(now, pairBurst, pairRefill); {
	case !ok && !resumes:
		return nil, &throttled{budget: "source-name", reason: "too many attempts at this name from this address", retryAfter: wait}
	case !ok:
		a.resumeOnly = true
	case owner:
		a.pair = pair
	default:
		ok, wait := ns.take(now, nameBurst, nameRefill)
		switch {
		case ok:
			a.pair, a.nameToken = pair, true
		case !resumes:
			pair.give(pairBurst)
			return nil, &throttled{budget: "name", reason: "too many attempts at this name", retryAfter: wait}
		default:
			pair.give(pairBurst)
			a.resumeOnly = true
		}
	}
	t.inFlight[source]++
	return a, nil
}

// done ends the handshake; a success gives its tokens back.
func (a *admission) done(success bool) {
	a.once.Do(func() {
		t := a.t
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.inFlight[a.source]--; t.inFlight[a.source] <= 0 {
			delete(t.inFlight, a.source)
		}
		if !success {
			return
		}
		if a.pair != nil {
			a.pair.give(pairBurst)
			if a.pair.tokens >= pairBurst {
				// Full: a new one would be the same, so a registered
				// agent keeps no entry here. Attempts still in flight
				// give back to this one, which can only be stricter.
				t.pairs.remove(a.pairKey, a.pair)
			}
		}
		if a.nameToken {
			a.name.give(nameBurst)
		}
		a.name.owner = a.source
	})
}
