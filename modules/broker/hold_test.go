package broker

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestHold: a hold applies to a configured name only, lasts its time, and
// a disconnect without a hold ends an earlier one.
func TestHold(t *testing.T) {
	b := newBroker(zap.NewNop())
	b.Claim([]Entry{{Name: "Home", Password: "pw"}})
	if known, _ := b.Disconnect("nobody", time.Minute); known {
		t.Error("a name that no entry has was held")
	}
	known, connected := b.Disconnect("HOME", 150*time.Millisecond)
	if !known || connected {
		t.Errorf("Disconnect = %v, %v; want a known name with no agent", known, connected)
	}
	if left := b.heldFor("home"); left <= 0 || left > 150*time.Millisecond {
		t.Errorf("held for %s, want up to 150ms", left)
	}
	if st := b.Agents(); len(st) != 1 || st[0].HeldUntil == nil {
		t.Errorf("the status does not show the hold: %+v", st)
	}
	if st, ok := b.Agent("hOmE"); !ok || st.Name != "Home" || st.HeldUntil == nil || !st.HeldUntil.Equal(*b.Agents()[0].HeldUntil) {
		t.Errorf("Agent(hOmE) = %+v, %v; want what Agents lists", st, ok)
	}
	if st, ok := b.Agent("nobody"); ok {
		t.Errorf("Agent(nobody) = %+v, want none", st)
	}
	time.Sleep(200 * time.Millisecond)
	if left := b.heldFor("home"); left != 0 {
		t.Errorf("still held %s after the hold ended", left)
	}
	b.Disconnect("home", time.Hour)
	b.Disconnect("home", 0)
	if left := b.heldFor("home"); left != 0 {
		t.Errorf("a disconnect without a hold left the earlier one: %s", left)
	}
}
