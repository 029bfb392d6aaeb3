package broker

import (
	"strings"
	"testing"
	"time"
)

// testIntake returns an intake of rate a second and maxInFlight, on a
// clock the test moves, whose random draws are always r.
func testIntake(rate, maxInFlight int, r float64) (*intake, *time.Time) {
	now := time.Unix(1_000_000, 0)
	in := &intake{now: func() time.Time { return now }, random: func() float64 { return r }, maxInFlight: maxInFlight}
	in.setRate(rate)
	return in, &now
}

// TestIntakeRate: a burst of a second's worth is admitted at once, then one
// more each 1/rate; the rest are told to come back after at least a second.
func TestIntakeRate(t *testing.T) {
	in, now := testIntake(100, 1000, 0)
	for i := range 100 {
		leave, busy := in.enter()
		if busy != nil {
			t.Fatalf("handshake %d of the first second's burst refused: %s", i, busy.reason)
		}
		leave()
	}
	_, busy := in.enter()
	if busy == nil {
		t.Fatal("the 101st handshake in the same instant was admitted")
	}
	if busy.retryAfter < time.Second {
		t.Errorf("Retry-After %s, want at least a second", busy.retryAfter)
	}
	if !strings.Contains(busy.reason, "at most 100 agent handshakes a second") {
		t.Errorf("reason %q does not say the limit", busy.reason)
	}
	*now = now.Add(10 * time.Millisecond)
	if _, busy := in.enter(); busy != nil {
		t.Errorf("a handshake 1/rate later refused: %s", busy.reason)
	}
	if _, busy := in.enter(); busy == nil {
		t.Error("a second one in the same 1/rate admitted")
	}
}

// TestIntakeInFlight: beyond the handshakes in flight, refused whatever
// the rate; a handshake that ends makes room, once however often it says
// so.
func TestIntakeInFlight(t *testing.T) {
	in, _ := testIntake(1000, 3, 0)
	var leaves []func()
	for range 3 {
		leave, busy := in.enter()
		if busy != nil {
			t.Fatalf("refused below the in-flight limit: %s", busy.reason)
		}
		leaves = append(leaves, leave)
	}
	_, busy := in.enter()
	if busy == nil || !strings.Contains(busy.reason, "3 agent handshakes in flight") {
		t.Fatalf("fourth in flight: %+v, want refused for the in-flight limit", busy)
	}
	leaves[0]()
	leaves[0]()
	if _, busy := in.enter(); busy != nil {
		t.Fatalf("refused after one ended: %s", busy.reason)
	}
	if _, busy := in.enter(); busy == nil {
		t.Fatal("one leave made room for two")
	}
}

// TestIntakeSpread: those turned away are told to come back over the time
// the gateway needs to take them all at its rate: with 1000 turned away
// in a second at 100 a second, up to about 10 s later; the demand of the
// last second still counts in the next, and a quiet spell forgets it.
func TestIntakeSpread(t *testing.T) {
	in, now := testIntake(100, 100000, 1)
	for range 100 {
		in.enter()
	}
	var last time.Duration
	for range 1000 {
		_, busy := in.enter()
		if busy == nil {
			t.Fatal("admitted beyond the rate")
		}
		last = busy.retryAfter
	}
	if want := time.Second + 10*time.Second; last != want {
		t.Errorf("the 1000th turned away in a second: Retry-After %s, want %s", last, want)
	}
	*now = now.Add(1500 * time.Millisecond)
	for range 150 {
		in.enter()
	}
	if _, busy := in.enter(); busy == nil || busy.retryAfter != last {
		t.Errorf("the second after: %+v, want the last second's spread %s", busy, last)
	}
	*now = now.Add(5 * time.Second)
	for range 100 {
		in.enter()
	}
	if _, busy := in.enter(); busy == nil || busy.retryAfter != time.Second+10*time.Millisecond {
		t.Errorf("after a quiet spell: %+v, want 1s and one handshake's time", busy)
	}
	in.random = func() float64 { return 1 }
	in.demand = 1 << 30
	if _, busy := in.enter(); busy == nil || busy.retryAfter != maxIntakeWait {
		t.Errorf("a huge demand: %+v, want the cap %s", busy, maxIntakeWait)
	}
}

// TestIntakeRefund: a handshake that the throttle refuses gives its token
// back, so that refusals cannot keep other agents out.
func TestIntakeRefund(t *testing.T) {
	in, _ := testIntake(2, 100, 0)
	for range 10 {
		leave, busy := in.enter()
		if busy != nil {
			t.Fatalf("refused though every token was given back: %s", busy.reason)
		}
		in.refund()
		leave()
	}
}
