// Package mux sets up the stream multiplexer that carries a name's
// sessions over a few back connections (docs/protocol.md section 4): the
// gateway opens the streams, the agent accepts them.
package mux

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
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
	s, err := yamux.Client(newBatchConn(conn, nil), config(log, 0))
	if err != nil {
		return nil, fmt.Errorf("starting the multiplexer: %w", err)
	}
	return s, nil
}

// Agent starts the agent's side on conn: it accepts the streams and pings
// the gateway every keepAlive. under, when not nil, is the connection
// under conn's TLS, whose records it sends together.
func Agent(conn io.ReadWriteCloser, under *HoldConn, log *zap.Logger, keepAlive time.Duration) (*yamux.Session, error) {
	s, err := yamux.Server(newBatchConn(conn, under), config(log, keepAlive))
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

// Sizes of a batchConn's buffer.
const (
	// batchLimit is how much a connection holds for the flusher before a
	// write waits for it: enough for several full TLS records per write.
	batchLimit = 64 << 10
	// batchKeep bounds the capacity of a buffer kept for reuse.
	batchKeep = 2 * batchLimit
	// batchStart is the capacity of a new buffer, which grows with the
	// batches it carries: a few small frames, when the pool was emptied
	// by a garbage collection, cost no large allocation.
	batchStart = 16 << 10
)

var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, batchStart); return &b }}

// batchConn gathers the multiplexer's writes and writes them out from a
// goroutine of its own. The multiplexer writes each frame header apart
// from its body and each frame apart from the next, and over TLS every
// write costs at least a record and a system call: here the frames queued
// while a write is in progress go out together in the next one, in full
// records, and a frame's header always goes with its body. A write that
// fails closes the connection and fails every write after it. Close lets
// what is queued go out first, for closeDrain at most.
type batchConn struct {
	io.ReadWriteCloser
	mu   sync.Mutex
	cond sync.Cond // signalled when pending is set or taken, or err is set
	// pending holds the bytes for the next write; nil while there are
	// none, so that an idle connection holds no buffer.
	pending *[]byte
	writing bool  // the flusher is writing what it took from pending
	err     error // set when a write failed or the connection closed
	// under, when not nil, is the connection under conn's TLS, whose
	// records of one write go out together.
	under *HoldConn
}

func newBatchConn(conn io.ReadWriteCloser, under *HoldConn) *batchConn {
	c := &batchConn{ReadWriteCloser: conn, under: under}
	c.cond.L = &c.mu
	go c.flush()
	return c
}

// Write queues p for the flusher. It waits while batchLimit bytes are
// queued already.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && c.pending != nil && len(*c.pending) >= batchLimit {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.pending == nil {
		c.pending = batchBuffers.Get().(*[]byte)
		c.cond.Broadcast()
	}
	*c.pending = append(*c.pending, p...)
	return len(p), nil
}

// flush writes what is queued, all of it at once, until the connection
// fails or closes.
func (c *batchConn) flush() {
	for {
		c.mu.Lock()
		for c.err == nil && c.pending == nil {
			c.cond.Wait()
		}
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		out := c.pending
		c.pending = nil
		c.writing = true
		c.cond.Broadcast()
		c.mu.Unlock()

		if c.under != nil {
			c.under.hold()
		}
		_, err := c.ReadWriteCloser.Write(*out)
		if c.under != nil {
			if uerr := c.under.release(); err == nil {
				err = uerr
			}
		}
		if cap(*out) <= batchKeep {
			*out = (*out)[:0]
			batchBuffers.Put(out)
		}
		c.mu.Lock()
		c.writing = false
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			// As when the multiplexer's own write fails, the connection
			// ends, which its reader notices.
			if c.fail(err) {
				c.ReadWriteCloser.Close()
			}
			return
		}
	}
}

// fail sets the error that every later write returns, unless one is set
// already, and wakes whoever waits. It reports whether it set err.
func (c *batchConn) fail(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.err = err
	c.cond.Broadcast()
	return true
}

// Close stops the flusher and closes the connection. Under TLS it closes
// the connection beneath first, so that a batch in flight fails at once
// rather than hold up TLS's close_notify alert.
func (c *batchConn) Close() error {
	c.drain(closeDrain)
	c.fail(net.ErrClosed)
	if c.under != nil {
		c.under.Close()
	}
	return c.ReadWriteCloser.Close()
}

// closeDrain is how long Close waits for what is queued to be written: the
// last frames of the streams that ended, which a peer that reads gets at
// once.
const closeDrain = 100 * time.Millisecond

// drain waits until nothing is queued or being written, the connection
// failed, or d passed.
func (c *batchConn) drain(d time.Duration) {
	expired := false
	timer := time.AfterFunc(d, func() {
		c.mu.Lock()
		expired = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && (c.pending != nil || c.writing) && !expired {
		c.cond.Wait()
	}
}
