package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// ticket is one OPEN the agent has not answered yet.
type ticket struct {
	reg     *registration
	kind    wire.Kind
	expires time.Time
	// deliver receives the back connection; nil when nobody waits for it
	// (a spare). Guarded by the broker's mutex.
	deliver chan net.Conn
	// slotFreed is set once the ticket gave its slot back. Guarded by the
	// broker's mutex.
	slotFreed bool
}

// freeSlot gives the ticket's slot back, once. Called with b.mu held.
func (t *ticket) freeSlot() {
	if !t.slotFreed {
		t.slotFreed = true
		<-t.reg.slots[t.kind]
	}
}

// errTooMany reports a limit reached on back connections.
var errTooMany = errors.New("too many back connections")

// open issues a ticket to reg and sends the OPEN frame. A request (deliver
// set) waits for a free ticket slot until ctx ends; a spare (deliver nil)
// is not asked for when no slot is free.
func (b *Broker) open(ctx context.Context, reg *registration, kind wire.Kind, deliver chan net.Conn) error {
	// Expired tickets give their slots back first, or unanswered OPENs
	// would fill the slots for good.
	now := time.Now()
	b.mu.Lock()
	b.sweepTickets(now, reg.settings.TicketTTL)
	b.mu.Unlock()
	slots := reg.slots[kind]
	if deliver == nil {
		select {
		case slots <- struct{}{}:
		default:
			return errTooMany
		}
	} else {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-reg.done:
			return fmt.Errorf("the agent disconnected")
		}
	}
	limit := reg.settings.MaxBackConns + reg.spare
	if kind == wire.KindRDP {
		limit = maxRDPBackConns
	}
	if int(reg.backConns[kind].Load()) >= limit {
		<-slots
		return errTooMany
	}
	id := [wire.TicketSize]byte(randomBytes(wire.TicketSize))
	now = time.Now()
	b.mu.Lock()
	b.tickets[id] = &ticket{reg: reg, kind: kind, expires: now.Add(reg.settings.TicketTTL), deliver: deliver}
	b.mu.Unlock()
	if err := reg.send(wire.Frame{Type: wire.FrameOpen, Ticket: id[:], Kind: kind}); err != nil {
		b.mu.Lock()
		if t, ok := b.tickets[id]; ok {
			delete(b.tickets, id)
			t.freeSlot()
		}
		b.mu.Unlock()
		reg.close(0, "control connection lost: "+err.Error())
		return fmt.Errorf("sending OPEN: %w", err)
	}
	return nil
}

// sweepInterval is the least time between two sweeps of the tickets: a
// sweep walks them all, and requests must not pay that each.
const sweepInterval = 100 * time.Millisecond

// sweepTickets gives the slots of expired tickets back, forgets tickets
// long expired, and presented tickets old enough that a replay would be
// refused as unknown anyway, at most once per sweepInterval. Called with
// b.mu held.
func (b *Broker) sweepTickets(now time.Time, ttl time.Duration) {
	if now.Sub(b.swept) < sweepInterval {
		return
	}
	b.swept = now
	for id, t := range b.tickets {
		if now.After(t.expires) {
			t.freeSlot()
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
// ticket up, so that a wrong proof cannot spend someone else's ticket. On
// success its registration counts one more back connection of the
// ticket's kind.
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
		b.mu.Lock()
		t.freeSlot()
		b.mu.Unlock()
		return nil, wire.CodeBadTicket, "the ticket expired"
	case t.reg.key != a.key:
		return nil, wire.CodeBadTicket, "the ticket was issued for another name"
	case !wire.Equal(hello.Session, t.reg.session):
		return nil, wire.CodeBadTicket, "the ticket was issued for another session"
	case !wire.Equal(hello.Proof, t.reg.sessionKey.BackProof(t.reg.session, hello.Ticket, t.kind, hello.Nonce, binding)):
		return nil, wire.CodeBadTicket, "wrong proof for the ticket"
	}
	b.mu.Lock()
	current := b.tickets[id] == t && !t.slotFreed
	if current {
		delete(b.tickets, id)
		t.freeSlot()
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
	t.reg.backConns[t.kind].Add(1)
	return t, 0, ""
}

// deliver hands a back connection to the request that waits for it. A web
// back connection that nobody waits for any more becomes a spare; one of
// another kind is closed: a ticket's kind is bound to its use.
func (b *Broker) deliver(t *ticket, c net.Conn) {
	b.mu.Lock()
	ch := t.deliver
	if ch != nil {
		ch <- c // buffered for exactly this one connection
	}
	b.mu.Unlock()
	if ch != nil {
		return
	}
	if t.kind == wire.KindHTTP {
		t.reg.addIdle(c)
		return
	}
	c.Close()
}

// abandon forgets the waiter of the tickets whose request gave up, and
// deals with a connection that arrived meanwhile as deliver does.
func (b *Broker) abandon(reg *registration, kind wire.Kind, ch chan net.Conn) {
	b.mu.Lock()
	for _, t := range b.tickets {
		if t.deliver == ch {
			t.deliver = nil
		}
	}
	b.mu.Unlock()
	select {
	case c := <-ch:
		if kind == wire.KindHTTP {
			reg.addIdle(c)
		} else {
			c.Close()
		}
	default:
	}
}
