package agent

import (
	"math/rand/v2"
	"time"
)

// stableAfter is how long a registration must last to count as stable; see
// pacing.
const stableAfter = 10 * time.Second

// backoff computes the delays between attempts to register: each one
// doubles the last from min up to max, and the delay drawn is a random
// point of the upper half of that step, never below min, so that agents
// that lost the gateway together do not come back together.
type backoff struct {
	min, max time.Duration
	step     time.Duration // the current step; 0 before the first delay
	random   func() float64
}

// newBackoff returns a backoff from min to max.
func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, random: rand.Float64}
}

// Next returns the next delay and doubles the step.
func (b *backoff) Next() time.Duration {
	switch {
	case b.step == 0:
		b.step = b.min
	case b.step < b.max:
		b.step = min(2*b.step, b.max)
	}
	d := b.step/2 + time.Duration(b.random()*float64(b.step-b.step/2))
	return min(max(d, b.min), b.max)
}

// Reset starts the delays from min again.
func (b *backoff) Reset() { b.step = 0 }

// pacing decides when a runner tries to register again. A registration
// that lasted stableAfter, or the first one, makes the delays start again
// from the shortest, and after a drop the session is asked back within
// dropSpread.
// Registrations that keep ending early are paced by the backoff instead,
// so that a gateway that accepts and then drops the agent is not hammered.
type pacing struct {
	bo *backoff
	// short counts the registrations in a row that ended before
	// stableAfter.
	short int
}

// registered is called on each WELCOME.
func (p *pacing) registered() {
	if p.short == 0 {
		p.bo.Reset()
	}
}

// ended is called when a registration that lasted up ends.
func (p *pacing) ended(up time.Duration) {
	if up >= stableAfter {
		p.short = 0
	} else {
		p.short++
	}
}

// dropSpread is the most a dropped session waits before it is asked back,
// so that the agents of a gateway that dropped them all do not come back
// in the same instant.
const dropSpread = 250 * time.Millisecond

// afterDrop returns the delay before asking a dropped session back: a
// random part of dropSpread, or the backoff if registrations keep ending
// early.
func (p *pacing) afterDrop() time.Duration {
	if p.short <= 1 {
		return time.Duration(p.bo.random() * float64(dropSpread))
	}
	return p.bo.Next()
}

// next returns the delay after a failure or a transient refusal.
func (p *pacing) next() time.Duration { return p.bo.Next() }
