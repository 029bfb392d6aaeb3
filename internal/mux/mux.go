// Package mux is the stream multiplexer that carries a name's sessions
// over a few back connections (docs/protocol.md section 4): yamux, as its
// specification describes, written for few hand-offs between goroutines
// and few copies per frame. The gateway opens the streams, the agent
// accepts them.
package mux

import (
	"io"
	"net"
	"time"

	"go.uber.org/zap"
)

// Settings of the multiplexer that both sides use.
const (
	// Backlog bounds the streams opened and not yet accepted: a burst of
	// sessions (hundreds of users logging on at once) must not be reset.
	Backlog = 8192
	// WindowSize is each stream's flow-control window at its start, as
	// the protocol sets it; a stream whose reader keeps up gets a larger
	// one (Stream.windowUpdateLocked), up to MaxWindow.
	WindowSize = 256 << 10
	// MaxWindow bounds a stream's window, and so the bytes a stream whose
	// reader stalls holds at the receiving side.
	MaxWindow = 4 << 20
	// writeTimeout bounds a write on the back connection: a peer that
	// stopped reading is dropped.
	writeTimeout = 30 * time.Second
	// closeTimeout is how long a stream closed on one side waits for the
	// other side's end before it is dropped.
	closeTimeout = 30 * time.Second
)

// Gateway starts the gateway's side on conn: it opens the streams. It
// leaves the keep-alive to the agent, which pings, so that thousands of
// idle names cost the gateway no timers.
func Gateway(conn net.Conn, log *zap.Logger) *Session {
	return newSession(conn, nil, log, true)
}

// Agent starts the agent's side on conn: it accepts the streams and pings
// the gateway every keepAlive, unless that is zero. under, when not nil,
// is the connection under conn's TLS, whose records it sends together.
func Agent(conn io.ReadWriteCloser, under *HoldConn, log *zap.Logger, keepAlive time.Duration) *Session {
	s := newSession(conn, under, log, false)
	if keepAlive > 0 {
		go s.keepAlive(keepAlive)
	}
	return s
}
