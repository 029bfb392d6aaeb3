package broker

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// muxConn is a multiplexed back connection: its streams carry the
// sessions of a registration.
type muxConn struct {
	session *yamux.Session
	ticket  []byte // the ticket it presented, which the stream tags cover
	// opening serializes the streams' openings, so that the agent sees
	// their ids grow, as it requires.
	opening sync.Mutex
}

// muxRefill is the least time between two rounds of asking for
// multiplexed back connections, so that one that drops as soon as it is
// made costs little.
const muxRefill = time.Second

// keepMuxes asks the agent for multiplexed back connections until the
// registration has muxConns of them, again whenever one drops or a ticket
// expires unanswered, until the registration closes.
func (r *registration) keepMuxes() {
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	for {
		r.b.mu.Lock()
		r.b.sweepTickets(time.Now(), r.settings.TicketTTL)
		missing := muxConns - len(r.muxes) - r.pending
		r.b.mu.Unlock()
		for range missing {
			if r.b.openMux(r) != nil {
				return
			}
		}
		if missing > 0 {
			// Wake up once the tickets could have expired, to ask again.
			expiry.Reset(r.settings.TicketTTL + sweepInterval)
		}
		select {
		case <-r.done:
			return
		case <-r.muxChanged:
		case <-expiry.C:
		}
		select {
		case <-r.done:
			return
		case <-time.After(muxRefill):
		}
	}
}

// wakeMuxes tells keepMuxes that the multiplexed back connections changed.
func (r *registration) wakeMuxes() {
	select {
	case r.muxChanged <- struct{}{}:
	default:
	}
}

// addMux starts the multiplexer on a back connection that presented
// ticket, and gives the connection to the registration's sessions.
func (r *registration) addMux(conn net.Conn, ticket []byte) {
	s, err := mux.Gateway(conn, r.b.logger.With(zap.String("name", r.name)))
	if err != nil {
		conn.Close()
		return
	}
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
	close(r.muxAdded)
	r.muxAdded = make(chan struct{})
	r.b.mu.Unlock()
	go func() {
		select {
		case <-s.CloseChan():
		case <-r.done:
			s.Close()
			return
		}
		r.b.mu.Lock()
		r.muxes = slices.DeleteFunc(r.muxes, func(x *muxConn) bool { return x == m })
		r.b.mu.Unlock()
		r.b.logger.Debug("multiplexed back connection closed", zap.String("name", r.name))
		r.wakeMuxes()
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
	r.wakeMuxes()
	poll := retirePoll
	go func() {
		for m.session.NumStreams() > 0 {
			select {
			case <-m.session.CloseChan():
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
// streams, or, when there is none yet, a channel that closes when one
// arrives.
func (r *registration) pickMux() (*muxConn, <-chan struct{}) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	var best *muxConn
	for _, m := range r.muxes {
		if best == nil || m.session.NumStreams() < best.session.NumStreams() {
			best = m
		}
	}
	return best, r.muxAdded
}

// streamConn is a session's stream, handed to the reverse proxy or the
// RDP listener; closing it gives the session back to its budget.
type streamConn struct {
	*yamux.Stream
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
