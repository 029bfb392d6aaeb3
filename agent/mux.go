package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tildegate/tildegate/internal/mux"
	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// open answers an OPEN: it starts a multiplexed back connection for the
// ticket.
func (r *runner) open(ctx context.Context, sess *session, ticket []byte, kind wire.Kind) {
	if kind != wire.KindMux {
		r.log.Warn("ignoring an OPEN for a back connection of kind " + kind.String() + ": this agent opens multiplexed ones only")
		return
	}
	r.backs.Go(func() { r.serveMux(ctx, sess, ticket) })
}

// serveMux runs one multiplexed back connection: it presents the ticket,
// then serves the streams the gateway opens on it, each one session to
// the local service, until the connection ends.
func (r *runner) serveMux(ctx context.Context, sess *session, ticket []byte) {
	gc, err := connect(ctx, r.opts.Dial, r.tls, r.e, r.target)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("back connection failed", zap.Error(err))
		}
		return
	}
	conn := gc.Conn
	r.files.hold()
	defer r.files.release()
	defer gc.closer().Close()
	defer closeOnDone(ctx, gc.closer())()

	br, err := upgradeBack(conn, gc.tls, r.e.Name, hostHeader(r.e), sess, ticket)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("back connection refused", zap.Error(err))
		}
		return
	}
	session := mux.Agent(pipe.ReaderConn(conn, br), gc.under, r.log, sess.alive)
	defer session.Close()
	r.track.backs.Add(1)
	defer r.track.backs.Add(-1)
	r.log.Debug("multiplexed back connection open")
	var last uint32
	for {
		s, err := session.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Debug("multiplexed back connection closed", zap.Error(err))
			}
			return
		}
		// Stream ids only grow: a stream opening replayed under an old
		// id is refused whatever its tag.
		if s.StreamID() <= last {
			r.log.Warn("the gateway reused a stream id: something on the path replays streams; dropping the stream")
			s.Close()
			continue
		}
		last = s.StreamID()
		r.backs.Go(func() { r.serveStream(ctx, sess, ticket, s) })
	}
}

// serveStream serves one stream: it checks the stream's opening, connects
// to the local service the stream's kind leads to, answers the gateway
// and copies bytes both ways until either side ends.
func (r *runner) serveStream(ctx context.Context, sess *session, ticket []byte, s *mux.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(handshakeTimeout))
	kind, err := wire.ReadStreamOpen(s, sess.key, ticket, s.StreamID())
	if err != nil {
		if errors.Is(err, wire.ErrStreamTag) {
			r.log.Warn("a stream's opening failed its tag check: something on the path forged it; dropping the stream")
		}
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	addr, err := localAddress(r.e, kind)
	if err != nil {
		r.track.refused(wire.CodeBadRequest)
		_, _ = s.Write(wire.StreamRefused(wire.CodeBadRequest, err.Error()))
		return
	}
	if !r.files.acquire() {
		why := r.files.refusal()
		if ok, missed := r.tooMany.Allow(time.Now(), localDownLogInterval); ok {
			r.log.Warn("refusing sessions: "+why, zap.Int("unlogged_since_last", missed))
		}
		r.track.refused(wire.CodeTooMany)
		_, _ = s.Write(wire.StreamRefused(wire.CodeTooMany, why))
		return
	}
	defer r.files.release()
	local, err := dialLocal(ctx, addr)
	if err != nil {
		if ok, missed := r.localDown.Allow(time.Now(), localDownLogInterval); ok {
			r.log.Warn("the local service refuses connections; the gateway answers 502 meanwhile",
				zap.Error(err), zap.Int("unlogged_since_last", missed))
		}
		r.track.refused(wire.CodeLocalUnavailable)
		_, _ = s.Write(wire.StreamRefused(wire.CodeLocalUnavailable, err.Error()))
		return
	}
	defer local.Close()
	if _, err := s.Write(wire.StreamAccepted); err != nil {
		return
	}
	started := time.Now()
	counted, ended := r.track.session(kind, local)
	defer ended()
	// The gateway never closes one direction alone, and RDP ends with
	// either side: the first end closes both.
	up, down, err := pipe.Join(s, s, counted)
	r.log.Debug("session closed", zap.String("kind", kind.String()), zap.String("local", addr),
		zap.Int64("bytes_to_local", up), zap.Int64("bytes_from_local", down),
		zap.Duration("duration", time.Since(started)), zap.NamedError("end", err))
}

// upgradeBack sends the back hello of docs/protocol.md section 4 on conn
// and returns the reader of the connection once the gateway accepted it
// and proved that it holds the session.
func upgradeBack(conn net.Conn, cs *tls.ConnectionState, name, host string, sess *session, ticket []byte) (*bufio.Reader, error) {
	var binding []byte
	if sess.bound {
		if cs == nil {
			return nil, errors.New("the session is bound to TLS, but the back connection has none")
		}
		if binding = wire.Binding(cs); binding == nil {
			return nil, errors.New("the TLS session gives no keying material for the channel binding")
		}
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, fmt.Errorf("setting the upgrade deadline: %w", err)
	}
	br, err := wire.PresentTicket(conn, host, name, sess.key, wire.BackHello(sess.id, sess.key, ticket, wire.KindMux, binding), binding)
	if err != nil {
		return nil, fmt.Errorf("upgrading the back connection: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clearing the upgrade deadline: %w", err)
	}
	return br, nil
}
