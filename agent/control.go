package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// Time limits of frame writes on the control connection.
const (
	// writeTimeout bounds one frame write.
	writeTimeout = 10 * time.Second
	// closeTimeout bounds the CLOSE sent when the agent stops, so that a
	// gateway that does not read cannot hold the agent up.
	closeTimeout = 2 * time.Second
)

// frameWriter serializes the writes to a control connection, tags the
// frames, and remembers when the last one happened, for the liveness
// frames.
type frameWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	sealer *wire.Sealer
	last   time.Time
}

// write sends one frame, failing after timeout.
func (w *frameWriter) write(f wire.Frame, timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := w.sealer.Append(make([]byte, 0, 64), f)
	if err != nil {
		return err
	}
	if err := w.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	w.last = time.Now()
	_, err = w.conn.Write(b)
	return err
}

// idle returns how long nothing was written.
func (w *frameWriter) idle() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Since(w.last)
}

// serve runs a registered control connection until it ends: it answers
// OPENs with back connections and the gateway's ALIVEs, and keeps the
// connection alive. It returns ctx's error once ctx ended (after sending
// CLOSE{shutting-down}), a *wire.Refusal when the gateway closed the
// registration, and any other error when the connection dropped.
func (r *runner) serve(ctx context.Context, c *control) error {
	defer c.conn.Close()
	w := &frameWriter{conn: c.conn, sealer: wire.NewSealer(c.sess.key, true), last: time.Now()}
	// The multiplexed back connections, and their sessions, belong to this
	// registration: the gateway closes its ends when the registration
	// ends, and a resumed one asks for new ones.
	regCtx, endRegistration := context.WithCancel(ctx)
	defer endRegistration()
	done := make(chan error, 1)
	answer := make(chan struct{}, 1)
	go func() { done <- r.readFrames(regCtx, c, answer) }()
	alive := time.NewTimer(c.sess.alive)
	defer alive.Stop()
	for {
		select {
		case <-ctx.Done():
			reason := stopReason(ctx)
			if err := w.write(wire.Frame{Type: wire.FrameClose, Code: wire.CodeShuttingDown, Reason: reason}, closeTimeout); err != nil {
				r.log.Debug("could not send CLOSE", zap.Error(err))
			}
			c.conn.Close()
			<-done
			r.log.Info("closed", zap.String("reason", reason))
			return ctx.Err()
		case err := <-done:
			return err
		case <-answer:
			// The gateway's ALIVE is answered at once, unless this side
			// spoke lately: a gateway with thousands of agents then hears
			// them in the burst of its own sweep, not one by one.
			if w.idle() < c.sess.alive/2 {
				continue
			}
		case <-alive.C:
			if idle := w.idle(); idle < c.sess.alive {
				alive.Reset(c.sess.alive - idle)
				continue
			}
		}
		if err := w.write(wire.Frame{Type: wire.FrameAlive}, writeTimeout); err != nil {
			c.conn.Close()
			<-done
			return fmt.Errorf("sending ALIVE: %w", err)
		}
		alive.Reset(c.sess.alive)
	}
}

// readFrames reads the gateway's frames, checking their tags, until the
// connection ends; each ALIVE is passed on to answer.
func (r *runner) readFrames(ctx context.Context, c *control, answer chan<- struct{}) error {
	for {
		if err := c.conn.SetReadDeadline(time.Now().Add(c.sess.dead)); err != nil {
			return fmt.Errorf("setting the read deadline: %w", err)
		}
		f, err := c.opener.ReadFrame(c.r)
		if errors.Is(err, wire.ErrFrameTag) {
			r.log.Error("a control frame from the gateway failed its tag check: " +
				"something on the path forged or changed it; dropping the connection")
			return err
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("nothing from the gateway for %s", c.sess.dead)
			}
			return fmt.Errorf("reading from the gateway: %w", err)
		}
		switch f.Type {
		case wire.FrameOpen:
			r.open(ctx, c.sess, f.Ticket, f.Kind)
		case wire.FrameClose, wire.FrameRefuse:
			return &wire.Refusal{Code: f.Code, Reason: f.Reason}
		case wire.FrameAlive:
			select {
			case answer <- struct{}{}:
			default:
			}
		default:
			r.log.Debug("ignoring a control frame", zap.Uint8("type", uint8(f.Type)))
		}
	}
}
