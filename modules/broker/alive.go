package broker

import (
	"time"

	"github.com/tildegate/tildegate/wire"
)

// maxAliveTick is the longest time between two rounds of the broker's
// ALIVE sweep; a registration's ALIVE goes out at most one round after it
// is due.
const maxAliveTick = time.Second

// aliveTickFor is the sweep's round for an alive interval: a fraction of
// it, at most maxAliveTick.
func aliveTickFor(alive time.Duration) time.Duration {
	return min(max(alive/4, 10*time.Millisecond), maxAliveTick)
}

// sendAlives sends ALIVE on the control connections that will have sent
// nothing for their alive interval by the next round, until the broker
// stops: early rather than late, so that a peer's dead time is never
// eaten into. One goroutine and one timer serve every registration, so
// that thousands of idle agents cost one wake-up per round, not one each;
// the round follows the shortest alive interval registered now.
func (b *Broker) sendAlives() {
	timer := time.NewTimer(time.Duration(b.aliveTick.Load()))
	defer timer.Stop()
	var due []*registration
	for {
		select {
		case <-b.stopped:
			return
		case <-timer.C:
		case <-b.aliveSooner:
		}
		now := time.Now().UnixNano()
		round := b.aliveTick.Load()
		shortest := time.Duration(0)
		b.mu.Lock()
		for _, r := range b.regs {
			alive := r.settings.Alive
			if shortest == 0 || alive < shortest {
				shortest = alive
			}
			if now+round-r.lastSent.Load() >= int64(alive) && r.aliveSending.CompareAndSwap(false, true) {
				due = append(due, r)
			}
		}
		b.mu.Unlock()
		for i, r := range due {
			// Each on its own: one connection whose peer stopped reading
			// must not hold up the others' ALIVEs, and has one at most in
			// flight until its write times out.
			go r.sendAlive()
			due[i] = nil
		}
		due = due[:0]
		next := maxAliveTick
		if shortest > 0 {
			next = aliveTickFor(shortest)
		}
		b.aliveTick.Store(int64(next))
		timer.Reset(next)
	}
}

// sendAlive sends an ALIVE, and closes the registration if it cannot.
func (r *registration) sendAlive() {
	defer r.aliveSending.Store(false)
	if err := r.send(wire.Frame{Type: wire.FrameAlive}); err != nil {
		r.close(0, "control connection lost: "+err.Error())
	}
}

// keepAliveEvery makes the sweep's rounds short enough for alive at once,
// for a registration that needs shorter ones than those registered.
func (b *Broker) keepAliveEvery(alive time.Duration) {
	tick := int64(aliveTickFor(alive))
	for {
		cur := b.aliveTick.Load()
		if cur <= tick {
			return
		}
		if b.aliveTick.CompareAndSwap(cur, tick) {
			select {
			case b.aliveSooner <- struct{}{}:
			default:
			}
			return
		}
	}
}
