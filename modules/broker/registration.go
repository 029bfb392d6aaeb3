package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// frameWriteTimeout bounds a write on the control connection: a
// deadline for the frames sent on demand, the alive sweep's watch for its
// ALIVEs.
const frameWriteTimeout = 5 * time.Second

// registration is an agent's live control connection for one name.
type registration struct {
	b           *Broker
	name        string
	key         string
	credentials credentials
	settings    Settings
	addr        string
	ip          netip.Addr
	tls         bool
	bound       bool   // the handshake is bound to the TLS session
	agent       string // the agent's software and version, from its hello
	since       time.Time
	// lastHeard is when the agent's last frame arrived, on the sweep's
	// clock.
	lastHeard atomic.Int64
	// lastSent is when the gateway last wrote a frame, on the sweep's
	// clock: the broker's sweep sends an ALIVE when it is older than the
	// alive interval.
	lastSent atomic.Int64
	// aliveSince is when the sweep's ALIVE being written was sent off,
	// on the sweep's clock; 0 when none is.
	aliveSince atomic.Int64
	// queued is 1 + its index in the alive sweep's queue, 0 when it is
	// not in it; guarded by the sweep's mutex.
	queued int
	stats  *nameStats

	session    []byte
	sessionKey wire.SessionKey
	conn       net.Conn
	wmu        sync.Mutex   // serializes frame writes
	sealer     *wire.Sealer // tags the frames sent; guarded by wmu

	// muxes are the multiplexed back connections that carry the
	// sessions; pending counts the mux tickets not yet presented nor
	// expired. Both guarded by the broker's mutex, as is muxAdded: made
	// when a session waits for a mux connection, closed and cleared when
	// one arrives. muxChanged wakes keepMuxes.
	muxes      []*muxConn
	pending    int
	muxAdded   chan struct{}
	muxChanged chan struct{}
	// wanted wakes keepMuxes when a session finds no multiplexed back
	// connection; lastUse is when a session was last asked for, in Unix
	// nanoseconds: none yet at first, so that a new registration costs
	// its control connection alone until its name is used.
	wanted  chan struct{}
	lastUse atomic.Int64
	// keeping is set while keepMuxes runs: from the first session until
	// the name is idle again.
	keeping atomic.Bool
	// sessions counts the open sessions of each kind: the web and RDP
	// have budgets of their own.
	sessions [kinds]atomic.Int64

	closeOnce sync.Once
	done      chan struct{}
}

// closed reports whether r was closed.
func (r *registration) closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// kinds is the number of session kinds: HTTP and RDP.
const kinds = 2

// send writes one tagged control frame within frameWriteTimeout.
func (r *registration) send(f wire.Frame) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.writeLocked(f)
}

// writeLocked writes one tagged control frame within frameWriteTimeout;
// r.wmu is held. The deadline is cleared afterwards, so that the sweep's
// ALIVEs go without one.
func (r *registration) writeLocked(f wire.Frame) error {
	_ = r.conn.SetWriteDeadline(time.Now().Add(frameWriteTimeout))
	err := r.writeFrameLocked(f)
	_ = r.conn.SetWriteDeadline(time.Time{})
	return err
}

// writeFrameLocked writes one tagged control frame with no deadline of its
// own; r.wmu is held.
func (r *registration) writeFrameLocked(f wire.Frame) error {
	b, err := r.sealer.Append(make([]byte, 0, 64), f)
	if err != nil {
		return err
	}
	now := clock()
	_, err = r.conn.Write(b)
	r.lastSent.Store(now)
	return err
}

// run reads the agent's frames and closes the registration when the
// connection ends; the alive sweep closes it when it stays silent for the
// dead time.
func (r *registration) run() {
	r.read(wire.NewOpener(r.sessionKey, true), clock()+int64(readerRestart))
}

// readerRestart is how long after its start a registration's reader goes
// on in a new goroutine, once. The runtime starts a goroutine with a stack
// as large as the average in use at its last collection: during a storm
// of handshakes, 8 KiB, which the collector never halves for a reader
// parked in crypto/tls's read (halving needs a quarter of the stack free
// of the frames and the runtime's reserve). Started once the storm is
// over, the reader gets 4 KiB; one that restarts during a storm longer
// than a minute keeps 8.
var readerRestart = time.Minute

// read reads the agent's frames with opener until the connection ends or
// the agent closes it, and then closes the registration; past restartAt
// on the sweep's clock (0: never), it goes on in a new goroutine. Its
// goroutine, one per agent, waits for the next frame's header with only
// this loop and io.ReadFull above the connection's Read on its stack, 1.6
// KiB in all (2.8 when it waited inside the frame decoder), so that a
// reader the runtime starts at 4 KiB stays within it while it reads a
// frame.
func (r *registration) read(opener *wire.Opener, restartAt int64) {
	var hdr [wire.HeaderSize]byte
	for {
		if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
			r.close(0, "control connection lost: "+err.Error())
			return
		}
		if why, end := r.readFrame(opener, hdr); end {
			r.close(0, why)
			return
		}
		if restartAt != 0 && clock() >= restartAt {
			go r.read(opener, 0)
			return
		}
	}
}

// readFrame reads the rest of the agent's frame whose header is hdr, and
// reports whether the registration ends with it, and why.
func (r *registration) readFrame(opener *wire.Opener, hdr [wire.HeaderSize]byte) (string, bool) {
	f, err := opener.ReadFrameAfter(hdr, r.conn)
	switch {
	case errors.Is(err, wire.ErrFrameTag):
		// Dropped without a CLOSE, which whoever forged the frame could
		// read as well: the agent resumes its session at once.
		r.b.logger.Warn("control frame with a wrong tag: forged, replayed or changed on the way; dropping the connection",
			zap.String("name", r.name), zap.String("remote_ip", r.addr))
		return "a control frame failed its tag check", true
	case err != nil:
		return "control connection lost: " + err.Error(), true
	}
	r.lastHeard.Store(clock())
	if f.Type == wire.FrameClose {
		return "the agent closed: " + f.Code.String() + ": " + f.Reason, true
	}
	return "", false
}

// close ends the registration once. A non-zero code is sent to the agent
// in a CLOSE frame first, so that it can say why in its log; within
// frameWriteTimeout, though an ALIVE written with no deadline holds the
// connection: the connection is closed then, which ends both writes.
func (r *registration) close(code wire.Code, reason string) {
	r.closeOnce.Do(func() {
		if code != 0 {
			stuck := time.AfterFunc(frameWriteTimeout, func() { _ = r.conn.Close() })
			_ = r.send(wire.Frame{Type: wire.FrameClose, Code: code, Reason: reason})
			stuck.Stop()
		}
		r.conn.Close()
		r.b.mu.Lock()
		if r.b.regs[r.key] == r {
			delete(r.b.regs, r.key)
			if resumable(code) {
				r.b.ended[r.key] = endedSession{id: r.session, key: r.sessionKey, until: time.Now().Add(resumeWindow)}
			}
		}
		r.b.mu.Unlock()
		// Closed first: a registration that add finds closed is not
		// queued, and one queued before is removed here.
		close(r.done)
		r.b.alive.remove(r)
		r.closeMuxes()
		fields := []zap.Field{zap.String("name", r.name), zap.String("remote_ip", r.addr), zap.String("reason", reason)}
		if code != 0 {
			fields = append(fields, zap.String("code", code.String()))
		}
		r.b.logger.Info("agent registration closed", fields...)
	})
}

// resumable reports whether a registration closed with code may be
// resumed: after a drop, not after the gateway turned it away.
func resumable(code wire.Code) bool {
	switch code {
	case 0, wire.CodeShuttingDown:
		return true
	}
	return false
}

// disqualifiedBy reports whether the registered agent no longer qualifies
// under a changed entry, and why.
func (r *registration) disqualifiedBy(e *Entry) (wire.Code, string, bool) {
	switch {
	case !r.credentials.samePassword(e):
		return wire.CodePasswordChanged, "the entry's password changed on the gateway", true
	case e.RequireTLS && !r.tls:
		return wire.CodeTLSRequired, "the entry now requires TLS; this connection is plain", true
	}
	if ok, err := allows(context.Background(), e.Filter, r.ip); err != nil || !ok {
		return wire.CodeAddressNotAllowed, "the entry's address filter no longer allows " + r.addr, true
	}
	return 0, "", false
}
