package agent

import (
	"testing"
	"time"
)

func TestBackoffGrowsWithinBounds(t *testing.T) {
	const lo, hi = 500 * time.Millisecond, 30 * time.Second
	for _, r := range []float64{0, 0.5, 0.999999} {
		b := newBackoff(lo, hi)
		b.random = func() float64 { return r }
		step := lo
		for i := range 12 {
			d := b.Next()
			if d < lo || d > hi {
				t.Fatalf("random %v, attempt %d: delay %s outside [%s, %s]", r, i, d, lo, hi)
			}
			if d < step/2 || d > step {
				t.Fatalf("random %v, attempt %d: delay %s outside the step's upper half [%s, %s]", r, i, d, step/2, step)
			}
			step = min(2*step, hi)
		}
	}
}

func TestBackoffJitterAndReset(t *testing.T) {
	b := newBackoff(500*time.Millisecond, 30*time.Second)
	for range 10 {
		b.Next()
	}
	seen := make(map[time.Duration]bool)
	for range 50 {
		d := b.Next()
		if d < 15*time.Second || d > 30*time.Second {
			t.Fatalf("capped delay %s outside [15s, 30s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d different delays out of 50 at the cap: no jitter", len(seen))
	}
	b.Reset()
	if d := b.Next(); d != 500*time.Millisecond {
		t.Errorf("first delay after Reset is %s, want the minimum 500ms", d)
	}
	if d := b.Next(); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("second delay after Reset is %s, want within [500ms, 1s]", d)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.OpenFiles != openFileLimit() || o.MinBackoff != DefaultMinBackoff || o.MaxBackoff != DefaultMaxBackoff ||
		o.SlowRetry != DefaultSlowRetry || o.Logger == nil || o.Dial == nil {
		t.Errorf("defaults: %+v", o)
	}
	for _, tc := range []struct{ in, want int }{{-1, openFileLimit()}, {40, 40}} {
		if got := (Options{OpenFiles: tc.in}).withDefaults().OpenFiles; got != tc.want {
			t.Errorf("OpenFiles %d becomes %d, want %d", tc.in, got, tc.want)
		}
	}
	if o := (Options{MinBackoff: time.Minute, MaxBackoff: time.Second}).withDefaults(); o.MaxBackoff != time.Minute {
		t.Errorf("MaxBackoff below MinBackoff becomes %s, want %s", o.MaxBackoff, time.Minute)
	}
}

func TestPacing(t *testing.T) {
	p := &pacing{bo: newBackoff(time.Second, time.Minute)}
	random := 1.0
	p.bo.random = func() float64 { return random }
	// A long outage grows the delays...
	for range 6 {
		p.next()
	}
	// ...and a registration starts them again.
	p.registered()
	p.ended(time.Minute)
	random = 0.5
	if d := p.afterDrop(); d != dropSpread/2 {
		t.Errorf("after a stable registration dropped: %s, want a random part of %s", d, dropSpread)
	}
	random = 1
	p.registered()
	p.ended(time.Second)
	if d := p.afterDrop(); d > dropSpread {
		t.Errorf("after the first short registration dropped: %s, want at most %s", d, dropSpread)
	}
	if d := p.next(); d != time.Second {
		t.Errorf("first delay after a registration: %s, want the minimum", d)
	}
	// Registrations that keep ending early are paced.
	var last time.Duration
	for i := range 4 {
		p.registered()
		p.ended(time.Second)
		d := p.afterDrop()
		if d < time.Second || d < last {
			t.Fatalf("short registration %d: delay %s after %s, want growing delays", i+2, d, last)
		}
		last = d
	}
	// A stable one ends that.
	p.registered()
	p.ended(stableAfter)
	if d := p.afterDrop(); d > dropSpread {
		t.Errorf("after a stable registration: %s, want at most %s", d, dropSpread)
	}
	p.registered()
	if d := p.next(); d != time.Second {
		t.Errorf("after a stable registration the delays restart: %s, want 1s", d)
	}
}
