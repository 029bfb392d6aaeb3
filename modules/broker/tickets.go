package broker

import (
	"fmt"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// ticket is one OPEN the agent has not answered yet: it asks for a
// multiplexed back connection.
type ticket struct {
	reg     *registration
	kind    wire.Kind
	expires time.Time
	// counted is set while the ticket counts in its registration's
	// pending. Guarded by the broker's mutex.
	counted bool
}

// uncount takes the ticket out of its registration's pending count, once.
// Called with b.mu held.
func (t *ticket) uncount() {
	if t.counted {
		t.counted = false
		t.reg.pending--
	}
}

// openMux issues a ticket for a multiplexed back connection to reg and
// sends the OPEN frame.
func (b *Broker) openMux(reg *registration) error {
	id := [wire.TicketSize]byte(randomBytes(wire.TicketSize))
	b.mu.Lock()
	b.tickets[id] = &ticket{reg: reg, kind: wire.KindMux, expires: time.Now().Add(reg.settings.TicketTTL), counted: true}
	reg.pending++
	b.mu.Unlock()
	if err := reg.send(wire.Frame{Type: wire.FrameOpen, Ticket: id[:], Kind: wire.KindMux}); err != nil {
		b.mu.Lock()
		if t, ok := b.tickets[id]; ok {
			delete(b.tickets, id)
			t.uncount()
		}
		b.mu.Unlock()
		reg.close(0, "control connection lost: "+err.Error())
		return fmt.Errorf("sending OPEN: %w", err)
	}
	return nil
}

// sweepInterval is the least time between two sweeps of the tickets: a
// sweep walks them all.
const sweepInterval = 100 * time.Millisecond

// sweepTickets uncounts expired tickets, forgets tickets long expired,
// and presented tickets old enough that a replay would be refused as
// unknown anyway, at most once per sweepInterval. Called with b.mu held.
func (b *Broker) sweepTickets(now time.Time, ttl time.Duration) {
	if now.Sub(b.swept) < sweepInterval {
		return
	}
	b.swept = now
	for id, t := range b.tickets {
		if now.After(t.expires) {
			t.uncount()
		}
		if now.Sub(t.expires) > ttl {
			delete(b.tickets, id)
		}
	}
	for id, at := range b.used {
		if now.Sub(at) > 10*ttl {
			delete(b.used, id)
		}
	}
}

// redeem checks a back hello's ticket and proof, and only then uses the
// ticket up, so that a wrong proof cannot spend someone else's ticket.
func (b *Broker) redeem(a *attempt, hello wire.Hello, binding []byte) (*ticket, wire.Code, string) {
	id := [wire.TicketSize]byte(hello.Ticket)
	now := time.Now()
	b.mu.Lock()
	t := b.tickets[id]
	_, replayed := b.used[id]
	b.mu.Unlock()
	switch {
	case t == nil && replayed:
		return nil, wire.CodeBadTicket, "the ticket was already used"
	case t == nil:
		return nil, wire.CodeBadTicket, "unknown ticket"
	case now.After(t.expires):
		return nil, wire.CodeBadTicket, "the ticket expired"
	case t.reg.key != a.key:
		return nil, wire.CodeBadTicket, "the ticket was issued for another name"
	case !wire.Equal(hello.Session, t.reg.session):
		return nil, wire.CodeBadTicket, "the ticket was issued for another session"
	case !wire.Equal(hello.Proof, t.reg.sessionKey.BackProof(t.reg.session, hello.Ticket, t.kind, hello.Nonce, binding)):
		return nil, wire.CodeBadTicket, "wrong proof for the ticket"
	}
	b.mu.Lock()
	current := b.tickets[id] == t
	if current {
		delete(b.tickets, id)
		t.uncount()
		b.used[id] = now
	}
	b.mu.Unlock()
	if !current {
		return nil, wire.CodeBadTicket, "the ticket was already used"
	}
	select {
	case <-t.reg.done:
		return nil, wire.CodeBadTicket, "the ticket's session has ended"
	default:
	}
	return t, 0, ""
}
