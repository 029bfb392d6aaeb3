package broker

import (
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
