package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHandshakeGate: at most handshakesPerGateway handshakes run at once
// per gateway address, other addresses are not held up, and a waiter
// whose context ends gives up.
func TestHandshakeGate(t *testing.T) {
	g := newHandshakeGate()
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			leave, err := g.enter(context.Background(), "10.0.0.1:443")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			leave()
		})
	}
	wg.Wait()
	if m := most.Load(); m < 1 || m > handshakesPerGateway {
		t.Errorf("%d handshakes at once at one address, want 1 to %d", m, handshakesPerGateway)
	}

	var held []func()
	for range handshakesPerGateway {
		leave, err := g.enter(context.Background(), "10.0.0.1:443")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, leave)
	}
	if leave, err := g.enter(context.Background(), "10.0.0.2:443"); err != nil {
		t.Errorf("another address waited for this one's slots: %v", err)
	} else {
		leave()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.enter(ctx, "10.0.0.1:443"); err == nil {
		t.Error("a handshake entered beyond the limit")
	}
	for _, leave := range held {
		leave()
	}
}
