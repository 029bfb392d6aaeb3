package broker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// frameWriteTimeout bounds a write on the control connection.
const frameWriteTimeout = 5 * time.Second

// registration is an agent's live control connection for one name.
type registration struct {
	b        *Broker
	name     string
	key      string
	entry    Entry // as it was when the agent registered
	settings Settings
	addr     string
	ip       netip.Addr
	tls      bool

	session    []byte
	sessionKey []byte
	conn       net.Conn
	wmu        sync.Mutex // serializes frame writes

	spare     int
	idle      chan net.Conn // spare back connections, opened ahead
	backConns atomic.Int64  // open back connections
	slots     chan struct{} // one per ticket not yet presented, up to MaxPending

	closeOnce sync.Once
	done      chan struct{}
}

// send writes one control frame.
func (r *registration) send(f wire.Frame) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_ = r.conn.SetWriteDeadline(time.Now().Add(frameWriteTimeout))
	return wire.WriteFrame(r.conn, f)
}

// run reads the agent's frames, sends ALIVE frames, keeps the spare back
// connections topped up, and closes the registration when the connection
// ends or stays silent for the dead time.
func (r *registration) run() {
	go r.keepAlive()
	for range r.spare {
		r.openSpare()
	}
	for {
		_ = r.conn.SetReadDeadline(time.Now().Add(r.settings.Dead))
		f, err := wire.ReadFrame(r.conn)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			r.close(0, "the agent was silent for "+r.settings.Dead.String())
			return
		case err != nil:
			r.close(0, "control connection lost: "+err.Error())
			return
		case f.Type == wire.FrameClose:
			r.close(0, "the agent closed: "+f.Code.String()+": "+f.Reason)
			return
		}
	}
}

func (r *registration) keepAlive() {
	ticker := time.NewTicker(r.settings.Alive)
	defer ticker.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-ticker.C:
			if err := r.send(wire.Frame{Type: wire.FrameAlive}); err != nil {
				r.close(0, "control connection lost: "+err.Error())
				return
			}
		}
	}
}

// close ends the registration once. A non-zero code is sent to the agent
// in a CLOSE frame first, so that it can say why in its log.
func (r *registration) close(code wire.Code, reason string) {
	r.closeOnce.Do(func() {
		if code != 0 {
			_ = r.send(wire.Frame{Type: wire.FrameClose, Code: code, Reason: reason})
		}
		r.conn.Close()
		r.b.mu.Lock()
		if r.b.regs[r.key] == r {
			delete(r.b.regs, r.key)
		}
		r.b.mu.Unlock()
		close(r.done)
		for {
			select {
			case c := <-r.idle:
				c.Close()
			default:
				fields := []zap.Field{zap.String("name", r.name), zap.String("remote_ip", r.addr), zap.String("reason", reason)}
				if code != 0 {
					fields = append(fields, zap.String("code", code.String()))
				}
				r.b.logger.Info("agent registration closed", fields...)
				return
			}
		}
	})
}

// disqualifiedBy reports whether the registered agent no longer qualifies
// under a changed entry, and why.
func (r *registration) disqualifiedBy(e *Entry) (wire.Code, string, bool) {
	switch {
	case !e.sameSecret(&r.entry):
		return wire.CodePasswordChanged, "the entry's password changed on the gateway", true
	case e.RequireTLS && !r.tls:
		return wire.CodeTLSRequired, "the entry now requires TLS; this connection is plain", true
	}
	if ok, err := allows(context.Background(), e.Filter, r.ip); err != nil || !ok {
		return wire.CodeAddressNotAllowed, "the entry's address filter no longer allows " + r.addr, true
	}
	return 0, "", false
}

// openSpare asks the agent for one more idle back connection.
func (r *registration) openSpare() {
	if err := r.b.open(context.Background(), r, wire.KindHTTP, nil); err != nil {
		r.b.logger.Debug("no spare back connection", zap.String("name", r.name), zap.Error(err))
	}
}

// addIdle keeps a back connection that nobody waits for as a spare.
func (r *registration) addIdle(c net.Conn) {
	select {
	case <-r.done:
		c.Close()
		return
	default:
	}
	select {
	case r.idle <- c:
	default:
		c.Close()
	}
}

// backDone counts a back connection as closed.
func (r *registration) backDone() { r.backConns.Add(-1) }

// backConn is a back connection handed to the transport; closing it
// updates its registration's count.
type backConn struct {
	net.Conn
	reg    *registration
	closed atomic.Bool
}

// Close closes the connection and counts it closed once.
func (c *backConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.reg.backDone()
	}
	return c.Conn.Close()
}
