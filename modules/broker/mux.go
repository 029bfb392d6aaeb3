package broker

import (
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// muxConn is a multiplexed back connection: its streams carry the
// sessions of a registration.
type muxConn struct {
	session *mux.Session
	ticket  []byte // the ticket it presented, which the stream tags cover
	// closedIdle is set when the gateway closed it for want of use: no
	// replacement is due.
	closedIdle atomic.Bool
}

// muxRefill is the least time between two rounds of asking for
// multiplexed back connections after one dropped, so that one that drops
// as soon as it is made costs little.
const muxRefill = time.Second

// keepMuxes keeps the registration's multiplexed back connections while
// the name is in use, and runs only then (see want): muxConns of them, asked for again when one drops or
// a ticket expires unanswered. A name with no session open and none
// opened for the idle timeout keeps none, nor does a registration before
// its first session, so that an idle agent costs its control connection
// alone; its next session asks for them again.
func (r *registration) keepMuxes() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		lastUse := time.Unix(0, r.lastUse.Load())
		active := r.sessionsOpen() > 0 || now.Sub(lastUse) < r.settings.IdleTimeout
		want := 0
		if active {
			want = muxConns
		}
		r.b.mu.Lock()
		r.b.sweepTickets(now, r.settings.TicketTTL)
		missing := want - len(r.muxes) - r.pending
		var idle []*muxConn
		if !active {
			idle, r.muxes = r.muxes, nil
		}
		pending := r.pending + max(missing, 0)
		r.b.mu.Unlock()
		for _, m := range idle {
			m.closedIdle.Store(true)
			m.session.Close()
		}
		if len(idle) > 0 {
			r.b.logger.Debug("closed the idle multiplexed back connections", zap.String("name", r.name))
		}
		for range missing {
			if r.b.openMux(r) != nil {
				return
			}
		}
		if !active && pending == 0 {
			// Idle with nothing pending: no goroutine waits for the next
			// session, whose want starts one again.
			r.keeping.Store(false)
			select {
			case <-r.wanted:
				// Asked for since this round looked, before the flag
				// fell: go on, unless that want started another.
				if !r.keeping.CompareAndSwap(false, true) {
					return
				}
				continue
			default:
				return
			}
		}
		// Wake up when tickets could have expired, to ask again, and when
		// the name turns idle.
		wake := time.Hour
		if pending > 0 {
			wake = r.settings.TicketTTL + sweepInterval
		}
		if active {
			// Kept active by a session open past the idle timeout, the
			// name is looked at again after another timeout, not at once.
			untilIdle := lastUse.Add(r.settings.IdleTimeout).Sub(now)
			if untilIdle <= 0 {
				untilIdle = r.settings.IdleTimeout
			}
			wake = min(wake, untilIdle+time.Millisecond)
		}
		timer.Reset(wake)
		select {
		case <-r.done:
			return
		case <-r.wanted:
		case <-timer.C:
		case <-r.muxChanged:
			// One dropped: pace the next round.
			select {
			case <-r.done:
				return
			case <-time.After(muxRefill):
			}
		}
	}
}

// sessionsOpen counts the registration's open sessions.
func (r *registration) sessionsOpen() int64 {
	var n int64
	for k := range kinds {
		n += r.sessions[k].Load()
	}
	return n
}

// wakeMuxes tells keepMuxes that a multiplexed back connection dropped.
func (r *registration) wakeMuxes() {
	select {
	case r.muxChanged <- struct{}{}:
	default:
	}
}

// want tells keepMuxes that a session needs a multiplexed back connection
// and found none, starting it when it does not run.
func (r *registration) want() {
	select {
	case r.wanted <- struct{}{}:
	default:
	}
	if r.keeping.CompareAndSwap(false, true) {
		go r.keepMuxes()
	}
}

// addMux starts the multiplexer on a back connection that presented
// ticket, and gives the connection to the registration's sessions.
func (r *registration) addMux(conn net.Conn, ticket []byte) {
	s := mux.Gateway(conn, r.b.logger.With(zap.String("name", r.name)))
	m := &muxConn{session: s, ticket: ticket}
	r.b.mu.Lock()
	select {
	case <-r.done:
		r.b.mu.Unlock()
		s.Close()
		return
	default:
	}
	r.muxes = append(r.muxes, m)
	if r.muxAdded != nil {
		close(r.muxAdded)
		r.muxAdded = nil
	}
	r.b.mu.Unlock()
	// A connection that arrives after its keeper left, the name idle
	// meanwhile, gets one again, to close it when it stays idle.
	if r.keeping.CompareAndSwap(false, true) {
		go r.keepMuxes()
	}
	go func() {
		select {
		case <-s.Done():
		case <-r.done:
			s.Close()
			return
		}
		r.b.mu.Lock()
		r.muxes = slices.DeleteFunc(r.muxes, func(x *muxConn) bool { return x == m })
		r.b.mu.Unlock()
		r.b.logger.Debug("multiplexed back connection closed", zap.String("name", r.name))
		if !m.closedIdle.Load() {
			r.wakeMuxes()
		}
	}()
}

// retireStreamID is the stream id past which a multiplexed back connection
// takes no new streams: ids are 32 bits and never reused, so a long-lived
// busy connection is replaced before it runs out of them.
var retireStreamID uint32 = 1 << 31

// retirePoll is how often a retired connection is checked for streams
// still open.
var retirePoll = 10 * time.Second

// retire takes m out of the connections that new streams go to, has
// keepMuxes ask for a replacement, and closes m once its last stream
// ended.
func (r *registration) retire(m *muxConn) {
	r.b.mu.Lock()
	n := len(r.muxes)
	r.muxes = slices.DeleteFunc(r.muxes, func(x *muxConn) bool { return x == m })
	retired := len(r.muxes) < n
	r.b.mu.Unlock()
	if !retired {
		return
	}
	r.b.logger.Debug("retiring a multiplexed back connection that used up half its stream ids", zap.String("name", r.name))
	m.closedIdle.Store(true) // replaced now, not when it closes
	r.want()
	poll := retirePoll
	go func() {
		for m.session.NumStreams() > 0 {
			select {
			case <-m.session.Done():
				return
			case <-time.After(poll):
			}
		}
		m.session.Close()
	}()
}

// closeMuxes closes the multiplexed back connections, and every session
// on them.
func (r *registration) closeMuxes() {
	r.b.mu.Lock()
	muxes := r.muxes
	r.muxes = nil
	r.b.mu.Unlock()
	for _, m := range muxes {
		m.session.Close()
	}
}

// pickMux returns the multiplexed back connection with the fewest
// streams (and a nil channel), or, when there is none yet, a channel that
// closes when one arrives.
func (r *registration) pickMux() (*muxConn, <-chan struct{}) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	var best *muxConn
	for _, m := range r.muxes {
		if best == nil || m.session.NumStreams() < best.session.NumStreams() {
			best = m
		}
	}
	if best == nil && r.muxAdded == nil {
		r.muxAdded = make(chan struct{})
	}
	return best, r.muxAdded
}

// streamConn is a session's stream, handed to the reverse proxy or the
// RDP listener; closing it gives the session back to its budget.
type streamConn struct {
	*mux.Stream
	reg    *registration
	kind   wire.Kind
	closed atomic.Bool
}

// Read counts the bytes from the agent.
func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	c.reg.stats.bytesFromAgent.Add(int64(n))
	return n, err
}

// Write counts the bytes to the agent.
func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	c.reg.stats.bytesToAgent.Add(int64(n))
	return n, err
}

// Close ends the stream and counts its session closed, once.
func (c *streamConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.reg.sessions[c.kind].Add(-1)
	}
	return c.Stream.Close()
}
