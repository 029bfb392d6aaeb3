package broker

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// clockedThrottle returns a throttle on a clock the test moves.
func clockedThrottle() (*throttle, *time.Time) {
	now := time.Unix(1000, 0)
	th := newThrottle()
	th.now = func() time.Time { return now }
	return th, &now
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// fail admits an attempt that then fails, and reports whether it was
// admitted.
func fail(th *throttle, ip netip.Addr, name string) bool {
	a, refused := th.admit(ip, name, false)
	if refused != nil {
		return false
	}
	a.done(false)
	return true
}

func TestThrottleInFlight(t *testing.T) {
	th, _ := clockedThrottle()
	ip := addr("10.0.0.1")
	var held []*admission
	for i := range maxInFlight {
		a, refused := th.admit(ip, fmt.Sprintf("name%d", i), false)
		if refused != nil {
			t.Fatalf("handshake %d refused: %s", i+1, refused.reason)
		}
		held = append(held, a)
	}
	if _, refused := th.admit(ip, "other", false); refused == nil {
		t.Fatalf("handshake %d in flight from one address admitted", maxInFlight+1)
	}
	if _, refused := th.admit(addr("10.0.0.2"), "other", false); refused != nil {
		t.Fatal("another address was refused")
	}
	held[0].done(true)
	held[0].done(true) // done twice counts once
	if _, refused := th.admit(ip, "other", false); refused != nil {
		t.Fatal("refused after one handshake ended")
	}
}

func TestThrottlePairBudget(t *testing.T) {
	th, now := clockedThrottle()
	ip := addr("10.0.0.1")
	for i := range pairBurst {
		if !fail(th, ip, "home") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	a, refused := th.admit(ip, "home", false)
	if a != nil || refused == nil || refused.retryAfter <= 0 || refused.retryAfter > pairRefill {
		t.Fatalf("attempt %d: %+v, want a refusal with a retry within %s", pairBurst+1, refused, pairRefill)
	}
	if !fail(th, ip, "work") {
		t.Error("failures on one name locked the address out of another")
	}
	*now = now.Add(pairRefill)
	if !fail(th, ip, "home") {
		t.Error("no attempt after the refill time")
	}
	if fail(th, ip, "home") {
		t.Error("two attempts after one refill time")
	}
}

// TestThrottleSuccessRefunds: an agent that registers again and again
// from the same address is never throttled.
func TestThrottleSuccessRefunds(t *testing.T) {
	th, _ := clockedThrottle()
	for i := range 10 * nameBurst {
		a, refused := th.admit(addr("10.0.0.1"), "home", false)
		if refused != nil {
			t.Fatalf("successful handshake %d refused: %s", i+1, refused.reason)
		}
		a.done(true)
	}
}

// TestThrottleForgetsRegisteredPairs: an address whose handshake at a name
// succeeded with its budget full leaves no entry for the pair, so that
// thousands of registered agents cost the throttle nothing there; one
// with failures behind it keeps its entry, and its spent budget.
func TestThrottleForgetsRegisteredPairs(t *testing.T) {
	th, _ := clockedThrottle()
	ip := addr("10.0.0.1")
	a, _ := th.admit(ip, "home", false)
	b, _ := th.admit(ip, "home", false) // in flight with a: holds a token
	a.done(true)
	if len(th.pairs.items) != 1 {
		t.Fatal("the pair was forgotten while another attempt held a token of it")
	}
	b.done(true)
	if len(th.pairs.items) != 0 {
		t.Fatalf("%d pairs remembered after the successes, want none", len(th.pairs.items))
	}

	for range pairBurst - 1 {
		fail(th, ip, "work")
	}
	a, _ = th.admit(ip, "work", false)
	a.done(true)
	if len(th.pairs.items) != 1 {
		t.Fatal("the pair with failures behind it was forgotten")
	}
	if !fail(th, ip, "work") {
		t.Fatal("the success did not give its token back")
	}
	if fail(th, ip, "work") {
		t.Error("the failures before the success were forgotten")
	}
}

// TestThrottleNameBudget: many addresses together get nameBurst attempts
// at a name, then one per nameRefill; other names are not affected.
func TestThrottleNameBudget(t *testing.T) {
	th, now := clockedThrottle()
	admitted := 0
	for i := range 200 {
		if fail(th, addr(fmt.Sprintf("127.0.%d.%d", i/250, i%250+1)), "home") {
			admitted++
		}
	}
	if admitted != nameBurst {
		t.Errorf("200 addresses got %d attempts at one name, want %d", admitted, nameBurst)
	}
	if !fail(th, addr("127.9.9.9"), "work") {
		t.Error("another name was refused")
	}
	perHour := 0
	for range 60 {
		*now = now.Add(nameRefill)
		for i := range 200 {
			if fail(th, addr(fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)), "home") {
				perHour++
			}
		}
	}
	if perHour != 60 {
		t.Errorf("%d attempts at one name in an hour from many addresses, want one per %s", perHour, nameRefill)
	}
}

// TestThrottleSparesTheOwner: attackers elsewhere spending a name's
// budget do not keep out the source that last registered the name.
func TestThrottleSparesTheOwner(t *testing.T) {
	th, _ := clockedThrottle()
	owner := addr("10.0.0.1")
	a, refused := th.admit(owner, "home", false)
	if refused != nil {
		t.Fatal(refused.reason)
	}
	a.done(true)
	for i := range 3 * nameBurst {
		fail(th, addr(fmt.Sprintf("127.0.0.%d", i+1)), "home")
	}
	if fail(th, addr("127.1.0.1"), "home") {
		t.Fatal("the name's budget was not spent")
	}
	if _, refused := th.admit(owner, "home", false); refused != nil {
		t.Errorf("the name's own agent was kept out: %s", refused.reason)
	}
	for range pairBurst {
		fail(th, owner, "home")
	}
	if fail(th, owner, "home") {
		t.Error("the owner's own budget does not apply")
	}
}

func TestThrottleResumePastBudget(t *testing.T) {
	th, _ := clockedThrottle()
	ip := addr("10.0.0.1")
	for range pairBurst {
		fail(th, ip, "home")
	}
	if _, refused := th.admit(ip, "home", false); refused == nil {
		t.Fatal("budget not spent")
	}
	a, refused := th.admit(ip, "home", true)
	if refused != nil || !a.resumeOnly {
		t.Fatalf("a resume past the budget: %+v, %+v; want it admitted on its resume proof only", a, refused)
	}
	a.done(true)
	if _, refused := th.admit(ip, "home", false); refused == nil {
		t.Error("a resume refunded budget it did not take")
	}
}

func TestThrottleIPv6CountsBySlash64(t *testing.T) {
	th, _ := clockedThrottle()
	for i := range pairBurst {
		if !fail(th, addr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "home") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if fail(th, addr("2001:db8:1:2:ffff::1"), "home") {
		t.Error("another address of the same /64 got its own budget")
	}
	if !fail(th, addr("2001:db8:1:3::1"), "home") {
		t.Error("another /64 was refused")
	}
	if got := sourceOf(addr("::ffff:10.1.2.3")); got != netip.MustParsePrefix("10.1.2.3/32") {
		t.Errorf("an IPv4-mapped address counts as %s", got)
	}
}

// TestThrottleBounded: a flood of distinct addresses keeps the state
// within maxTracked entries.
func TestThrottleBounded(t *testing.T) {
	th, _ := clockedThrottle()
	for i := range maxTracked + 1000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		fail(th, ip, "home")
	}
	if n := len(th.pairs.items); n > maxTracked {
		t.Errorf("%d sources remembered, want at most %d", n, maxTracked)
	}
	if len(th.inFlight) != 0 {
		t.Errorf("%d sources still in flight", len(th.inFlight))
	}
}

func TestLogLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLogLimiter()
	l.now = func() time.Time { return now }
	ip := addr("10.0.0.1")
	if ok, _ := l.allow(wire.CodeBadTicket, ip, ""); !ok {
		t.Fatal("the first refusal was not logged")
	}
	for range 99 {
		if ok, _ := l.allow(wire.CodeBadTicket, ip, ""); ok {
			t.Fatal("a repeated refusal was logged within the interval")
		}
	}
	if ok, _ := l.allow(wire.CodeWrongPassword, ip, ""); !ok {
		t.Error("another code was held back")
	}
	if ok, _ := l.allow(wire.CodeBadTicket, ip, "home"); !ok {
		t.Error("another entry's refusal was held back")
	}
	now = now.Add(refusalLogInterval)
	if ok, held := l.allow(wire.CodeBadTicket, ip, ""); !ok || held != 99 {
		t.Errorf("after the interval: logged %v with %d held back, want 99", ok, held)
	}
}

// BenchmarkThrottle: an attempt costs the same with one source as with
// 10,000 distinct ones.
func BenchmarkThrottle(b *testing.B) {
	for _, sources := range []int{1, 10000} {
		b.Run(fmt.Sprintf("sources=%d", sources), func(b *testing.B) {
			th := newThrottle()
			i := 0
			for b.Loop() {
				i++
				ip := netip.AddrFrom4([4]byte{10, 0, byte(i % sources >> 8), byte(i % sources)})
				if a, refused := th.admit(ip, "home", false); refused == nil {
					a.done(false)
				}
			}
		})
	}
}
