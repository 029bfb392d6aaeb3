package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// NoAgentError reports a request for a name that no agent holds.
type NoAgentError struct{ Name string }

// Error implements error.
func (e *NoAgentError) Error() string { return "no agent connected for " + e.Name }

// SessionError reports a session that could not be opened for a reason
// the client is told at once: a limit reached on the gateway or at the
// agent, or a local service that refuses connections.
type SessionError struct {
	Name string
	// Code is too-many for a limit, local-unavailable for a local service
	// that the agent cannot reach.
	Code   wire.Code
	Reason string
	// AtAgent is set when the agent refused the session.
	AtAgent bool
}

// Error implements error.
func (e *SessionError) Error() string {
	where := "the gateway"
	if e.AtAgent {
		where = "the agent"
	}
	return fmt.Sprintf("%s: %s refused the session: %s", e.Name, where, e.Reason)
}

// Status is the HTTP status that answers the request: 503 for a limit,
// 502 otherwise.
func (e *SessionError) Status() int {
	if e.Code == wire.CodeTooMany {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// waitTimeoutError reports a session that could not be opened in time. It
// is a net.Error timeout, which Caddy's reverse proxy answers with 504.
type waitTimeoutError struct {
	name string
	wait time.Duration
	what string
}

func (e *waitTimeoutError) Error() string {
	return fmt.Sprintf("%s for %s within %s", e.what, e.name, e.wait)
}
func (e *waitTimeoutError) Timeout() bool   { return true }
func (e *waitTimeoutError) Temporary() bool { return true }

// Dial opens a session of kind (HTTP or RDP) to the agent that holds name:
// a stream on one of its multiplexed back connections, connected by the
// agent to its local service. A limit reached, on the gateway or at the
// agent, is a *SessionError at once, and is logged once per interval.
func (b *Broker) Dial(ctx context.Context, name string, kind wire.Kind) (net.Conn, error) {
	b.mu.Lock()
	reg := b.regs[strings.ToLower(name)]
	b.mu.Unlock()
	if reg == nil {
		return nil, &NoAgentError{Name: name}
	}
	limit := reg.settings.MaxSessions
	if kind == wire.KindRDP {
		limit = maxRDPSessions
	}
	if n := reg.sessions[kind].Add(1); n > int64(limit) {
		reg.sessions[kind].Add(-1)
		return nil, b.refused(&SessionError{Name: reg.name, Code: wire.CodeTooMany,
			Reason: fmt.Sprintf("%d %s sessions are open, the most the gateway allows for this name", limit, kind)})
	}
	started := time.Now()
	conn, err := b.openStream(ctx, reg, kind)
	sessionOpenSeconds.Observe(time.Since(started).Seconds())
	if err != nil {
		reg.sessions[kind].Add(-1)
		var se *SessionError
		if errors.As(err, &se) {
			return nil, b.refused(se)
		}
		return nil, err
	}
	return conn, nil
}

// refused logs a session refusal, once per code and name per interval.
func (b *Broker) refused(e *SessionError) error {
	if ok, held := b.logs.allow(e.Code, netip.Addr{}, strings.ToLower(e.Name)); ok {
		fields := []zap.Field{zap.String("name", e.Name), zap.String("code", e.Code.String()), zap.String("reason", e.Reason),
			zap.Bool("at_agent", e.AtAgent)}
		if held > 0 {
			fields = append(fields, zap.Int("similar_not_logged", held))
		}
		b.logger.Warn("session refused", fields...)
	}
	return e
}

// openStream opens a stream of kind on the registration's least busy
// multiplexed back connection, waiting for one to arrive when there is
// none yet, and returns it once the agent has connected it.
func (b *Broker) openStream(ctx context.Context, reg *registration, kind wire.Kind) (net.Conn, error) {
	wait := reg.settings.BackWait
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	reg.lastUse.Store(time.Now().UnixNano())
	for {
		m, added := reg.pickMux()
		if m == nil {
			reg.want()
		}
		if m != nil {
			conn, err := reg.openOn(ctx, m, kind, deadline)
			if err == nil || !m.session.IsClosed() {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
					return nil, &waitTimeoutError{name: reg.name, wait: wait, what: "no answer from the agent to a new session"}
				}
				return conn, err
			}
			// The connection dropped meanwhile: try the next one.
			continue
		}
		select {
		case <-added:
		case <-timer.C:
			return nil, &waitTimeoutError{name: reg.name, wait: wait, what: "no multiplexed back connection from the agent"}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-reg.done:
			return nil, fmt.Errorf("the agent for %s disconnected", reg.name)
		}
	}
}

// openOn opens a stream of kind on m, writes its opening and reads the
// agent's answer before deadline.
func (r *registration) openOn(ctx context.Context, m *muxConn, kind wire.Kind, deadline time.Time) (net.Conn, error) {
	// Open sends the stream's opening in the frame that opens it before
	// it returns: one at a time, the agent receives them in the order of
	// their ids.
	s, err := m.session.Open(func(id uint32) []byte { return wire.StreamOpen(r.sessionKey, m.ticket, id, kind) })
	if err != nil {
		return nil, fmt.Errorf("opening a stream to the agent for %s: %w", r.name, err)
	}
	if s.StreamID() >= retireStreamID {
		r.retire(m)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	_ = s.SetDeadline(deadline)
	err = wire.ReadStreamAnswer(s)
	var ref *wire.Refusal
	switch {
	case errors.As(err, &ref):
		s.Close()
		return nil, &SessionError{Name: r.name, Code: ref.Code, Reason: ref.Reason, AtAgent: true}
	case ctx.Err() != nil:
		s.Close()
		return nil, ctx.Err()
	case err != nil:
		s.Close()
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	_ = s.SetDeadline(time.Time{})
	r.stats.sessions[kind].Add(1)
	return &streamConn{Stream: s, reg: r, kind: kind}, nil
}
