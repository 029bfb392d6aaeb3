package broker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// TestTicketKindBoundToUse: a back connection that arrives after its
// request gave up becomes a web spare only when it was opened for the web;
// an RDP one is closed, so that no web request ever reaches the RDP
// service.
func TestTicketKindBoundToUse(t *testing.T) {
	b := newBroker(zap.NewNop())
	reg := &registration{b: b, idle: make(chan net.Conn, maxSpare), done: make(chan struct{})}
	for _, kind := range []wire.Kind{wire.KindHTTP, wire.KindRDP} {
		for _, late := range []bool{false, true} {
			ours, theirs := net.Pipe()
			ch := make(chan net.Conn, 1)
			tk := &ticket{reg: reg, kind: kind, deliver: ch}
			b.tickets[[wire.TicketSize]byte{byte(kind), 1}] = tk
			if late {
				b.abandon(reg, kind, ch) // the request gave up first
				b.deliver(tk, ours)
			} else {
				b.deliver(tk, ours) // the connection came first
				b.abandon(reg, kind, ch)
			}
			select {
			case c := <-reg.idle:
				if kind != wire.KindHTTP {
					t.Errorf("%s back connection (late %v) became a web spare", kind, late)
				}
				c.Close()
			default:
				if kind == wire.KindHTTP {
					t.Errorf("web back connection (late %v) was not kept as a spare", late)
					break
				}
				_ = theirs.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := theirs.Write([]byte{1}); err == nil {
					t.Errorf("%s back connection (late %v) was left open", kind, late)
				}
			}
			theirs.Close()
		}
	}
}

// TestExpiredTicketsFreeTheirSlots: OPENs the agent never answers give
// their slots back when their tickets expire, so that the name does not
// run out of slots for good.
func TestExpiredTicketsFreeTheirSlots(t *testing.T) {
	b := newBroker(zap.NewNop())
	ours, theirs := net.Pipe()
	defer ours.Close()
	go func() { _, _ = io.Copy(io.Discard, theirs) }() // the agent reads the OPENs and ignores them
	settings := Settings{TicketTTL: 20 * time.Millisecond, MaxPending: 2}.WithDefaults()
	reg := &registration{b: b, conn: ours, settings: settings, sealer: wire.NewSealer(make(wire.SessionKey, wire.SessionKeySize), false),
		idle: make(chan net.Conn, maxSpare), done: make(chan struct{})}
	for k := range reg.slots {
		reg.slots[k] = make(chan struct{}, settings.MaxPending)
	}
	for i := range settings.MaxPending {
		if err := b.open(context.Background(), reg, wire.KindHTTP, nil); err != nil {
			t.Fatalf("OPEN %d: %v", i+1, err)
		}
	}
	if err := b.open(context.Background(), reg, wire.KindHTTP, nil); err == nil {
		t.Fatal("an OPEN beyond the pending tickets' limit was sent")
	}
	time.Sleep(sweepInterval + 2*settings.TicketTTL)
	if err := b.open(context.Background(), reg, wire.KindHTTP, nil); err != nil {
		t.Errorf("after the tickets expired: %v, want their slots back", err)
	}
}
