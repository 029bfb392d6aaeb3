// Package mux sets up the stream multiplexer that carries a name's
// sessions over a few back connections (docs/protocol.md section 4): the
// gateway opens the streams, the agent accepts them.
package mux

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"
)

// Settings of the multiplexer that both sides use.
const (
	// Backlog bounds the streams opened and not yet accepted: a burst of
	// sessions (hundreds of users logging on at once) must not be reset.
	Backlog = 8192
	// WindowSize is each stream's flow-control window: a bulk download
	// keeps no more than this in flight, so other streams are not stuck
	// behind it.
	WindowSize = 256 << 10
	// writeTimeout bounds a write on the back connection: a peer that
	// stopped reading is dropped.
	writeTimeout = 30 * time.Second
	// closeTimeout is how long a stream closed on one side waits for the
	// other side's end before it is dropped.
	closeTimeout = 30 * time.Second
)

// config returns the multiplexer's settings; keepAlive, when not zero, has
// the side ping the other at that interval and drop the connection when
// a ping goes unanswered.
func config(log *zap.Logger, keepAlive time.Duration) *yamux.Config {
	c := &yamux.Config{
		AcceptBacklog:          Backlog,
		EnableKeepAlive:        keepAlive > 0,
		KeepAliveInterval:      keepAlive,
		ConnectionWriteTimeout: writeTimeout,
		MaxStreamWindowSize:    WindowSize,
		StreamCloseTimeout:     closeTimeout,
		// A stream's opening is answered or given up on by the gateway's
		// own deadline: an unanswered one must not end the connection.
		StreamOpenTimeout: 0,
		Logger:            logger{log},
	}
	if keepAlive <= 0 {
		c.KeepAliveInterval = time.Minute // unused, but must be valid
	}
	return c
}

// Gateway starts the gateway's side on conn: it opens the streams. It
// leaves the keep-alive to the agent, which pings, so that thousands of
// idle names cost the gateway no timers.
func Gateway(conn net.Conn, log *zap.Logger) (*yamux.Session, error) {
	s, err := yamux.Client(&coalescingConn{ReadWriteCloser: conn}, config(log, 0))
	if err != nil {
		return nil, fmt.Errorf("starting the multiplexer: %w", err)
	}
	return s, nil
}

// Agent starts the agent's side on conn: it accepts the streams and pings
// the gateway every keepAlive.
func Agent(conn io.ReadWriteCloser, log *zap.Logger, keepAlive time.Duration) (*yamux.Session, error) {
	s, err := yamux.Server(&coalescingConn{ReadWriteCloser: conn}, config(log, keepAlive))
	if err != nil {
		return nil, fmt.Errorf("starting the multiplexer: %w", err)
	}
	return s, nil
}

// logger passes the multiplexer's messages on at debug level: what they
// report (a connection that dropped, a stream reset) reaches the log at
// the right level from the code that notices its effect.
type logger struct{ log *zap.Logger }

func (l logger) Print(v ...any) { l.log.Debug(strings.TrimSpace(fmt.Sprint(v...))) }
func (l logger) Printf(format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (l logger) Println(v ...any) { l.log.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }

// frameHeaderSize is the size of a multiplexer frame's header.
const frameHeaderSize = 12

// coalescingConn writes a data frame's header together with its body.
// The multiplexer writes them with two calls, which over TLS costs a
// record and a system call more per frame: the header of a data frame
// that has a body is held back and written in front of the next write,
// the body's.
type coalescingConn struct {
	io.ReadWriteCloser
	header []byte // a data frame header held back; written with the body
	buf    []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if len(c.header) == 0 {
		if isDataHeader(p) {
			c.header = append(c.header[:0], p...)
			return len(p), nil
		}
		return c.ReadWriteCloser.Write(p)
	}
	c.buf = append(append(c.buf[:0], c.header...), p...)
	c.header = c.header[:0]
	n, err := c.ReadWriteCloser.Write(c.buf)
	if cap(c.buf) > coalesceKeep {
		c.buf = nil
	}
	return max(0, n-frameHeaderSize), err
}

// coalesceKeep bounds the buffer a connection keeps between writes.
const coalesceKeep = 64 << 10

// isDataHeader reports whether p is exactly the header of a data frame
// with a body, which the multiplexer writes next.
func isDataHeader(p []byte) bool {
	const typeData = 0
	return len(p) == frameHeaderSize && p[1] == typeData && (p[8]|p[9]|p[10]|p[11]) != 0
}
