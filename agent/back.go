package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// open answers an OPEN: it starts a back connection for the ticket.
func (r *runner) open(ctx context.Context, sess *session, ticket []byte, kind wire.Kind) {
	addr, err := localAddress(r.e, kind)
	if err != nil {
		r.log.Warn("ignoring an OPEN", zap.Error(err))
		return
	}
	r.backs.Add(1)
	go func() {
		defer r.backs.Done()
		r.back(ctx, sess, ticket, kind, addr)
	}()
}

// back runs one back connection: it presents the ticket, waits for the
// gateway's first byte, then connects to the local service at addr and
// copies both ways until both sides are done.
func (r *runner) back(ctx context.Context, sess *session, ticket []byte, kind wire.Kind, addr string) {
	log := r.log.With(zap.String("kind", kindName(kind)), zap.String("local", addr))
	conn, cs, err := connect(ctx, r.opts.Dial, r.tls, r.e)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("back connection failed", zap.Error(err))
		}
		return
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()

	br, err := upgradeBack(conn, cs, r.e.Name, hostHeader(r.e), sess, ticket, kind)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("back connection refused", zap.Error(err))
		}
		return
	}
	log.Debug("back connection open")
	// The gateway may keep the connection idle in its pool for a while;
	// the local service is only dialled once a request comes.
	if _, err := br.Peek(1); err != nil {
		if ctx.Err() == nil && !errors.Is(err, io.EOF) {
			log.Debug("back connection ended before its first byte", zap.Error(err))
		}
		return
	}
	local, err := dialLocal(ctx, addr)
	if err != nil {
		if ok, missed := r.localDown.Allow(time.Now(), localDownLogInterval); ok {
			log.Warn("the local service refuses connections; the gateway answers 502 meanwhile",
				zap.Error(err), zap.Int("unlogged_since_last", missed))
		}
		return
	}
	defer local.Close()
	defer closeOnDone(ctx, local)()
	started := time.Now()
	// An RDP session ends with either side; HTTP passes half-closes on.
	splice := pipe.Splice
	if kind == wire.KindRDP {
		splice = pipe.Join
	}
	up, down, err := splice(conn, br, local)
	log.Debug("back connection closed", zap.Int64("bytes_to_local", up), zap.Int64("bytes_from_local", down),
		zap.Duration("duration", time.Since(started)), zap.NamedError("end", err))
}

// upgradeBack sends the back hello of docs/protocol.md section 4 on conn
// and returns the reader of the connection once the gateway accepted it
// and proved that it holds the session.
func upgradeBack(conn net.Conn, cs *tls.ConnectionState, name, host string, sess *session, ticket []byte, kind wire.Kind) (*bufio.Reader, error) {
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
	br, err := wire.PresentTicket(conn, host, name, sess.key, wire.BackHello(sess.id, sess.key, ticket, kind, binding), binding)
	if err != nil {
		return nil, fmt.Errorf("upgrading the back connection: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clearing the upgrade deadline: %w", err)
	}
	return br, nil
}
