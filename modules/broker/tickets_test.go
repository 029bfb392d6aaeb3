package broker

import (
	"net"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// TestUnansweredMuxTicketsAreReplaced: a registration asks for its
// multiplexed back connections, and when the agent answers none of the
// OPENs, asks again once their tickets expired, and not before.
func TestUnansweredMuxTicketsAreReplaced(t *testing.T) {
	b := newBroker(zap.NewNop())
	ours, theirs := net.Pipe()
	defer ours.Close()
	key := make(wire.SessionKey, wire.SessionKeySize)
	settings := Settings{TicketTTL: 300 * time.Millisecond}.WithDefaults()
	reg := &registration{b: b, name: "home", key: "home", conn: ours, settings: settings, sealer: wire.NewSealer(key, false),
		muxChanged: make(chan struct{}, 1), wanted: make(chan struct{}, 1), done: make(chan struct{})}
	reg.lastUse.Store(time.Now().UnixNano()) // in use, as after registering
	defer reg.close(0, "test over")
	opens := make(chan time.Time, 16)
	go func() {
		// The agent reads the OPENs and answers none.
		opener := wire.NewOpener(key, false)
		for {
			f, err := opener.ReadFrame(theirs)
			if err != nil {
				return
			}
			if f.Type == wire.FrameOpen && f.Kind == wire.KindMux {
				opens <- time.Now()
			}
		}
	}()
	start := time.Now()
	go reg.keepMuxes()
	for i := range 2 * muxConns {
		select {
		case at := <-opens:
			if i >= muxConns && at.Sub(start) < settings.TicketTTL {
				t.Errorf("OPEN %d %s after the first ones, before their tickets expired", i+1, at.Sub(start))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d OPENs, want %d: %d at first, as many again once their tickets expired", i, 2*muxConns, muxConns)
		}
	}
	b.mu.Lock()
	pending := reg.pending
	b.mu.Unlock()
	if pending != muxConns {
		t.Errorf("%d tickets pending, want %d: the expired ones no longer count", pending, muxConns)
	}
}
