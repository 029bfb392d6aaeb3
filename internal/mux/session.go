package mux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Errors of sessions and streams.
var (
	// ErrSessionShutdown is returned once the session has ended.
	ErrSessionShutdown = errors.New("the multiplexed connection is closed")
	// ErrStreamClosed is returned by a write after the stream's Close.
	ErrStreamClosed = errors.New("the stream is closed")
	// ErrStreamReset is returned once the peer reset the stream, or the
	// stream was reset because the peer did not close it in time.
	ErrStreamReset = errors.New("the stream was reset")
	// ErrRemoteGoAway is returned by Open once the peer said it takes no
	// more streams.
	ErrRemoteGoAway = errors.New("the peer takes no more streams")
	// ErrStreamsExhausted is returned by Open once the stream ids ran out.
	ErrStreamsExhausted = errors.New("the multiplexed connection has no stream ids left")
	// ErrKeepAliveTimeout ends a session whose peer did not answer a ping.
	ErrKeepAliveTimeout = errors.New("the peer did not answer a keep-alive ping")
)

// ErrTimeout is returned by a read or write whose deadline passed.
var ErrTimeout net.Error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout on a stream" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// protocolError is a peer's breach of the protocol, which ends the session.
type protocolError struct{ what string }

func (e protocolError) Error() string { return "the peer broke the multiplexer's protocol: " + e.what }

// Session is one multiplexed connection: the gateway's side opens
// streams, the agent's side accepts them.
type Session struct {
	conn   io.ReadWriteCloser
	under  *HoldConn
	reader *bufio.Reader
	w      *writer
	log    *zap.Logger
	opens  bool // the gateway's side: it opens streams, and accepts none

	// opening serializes Open, so that the peer sees ids grow.
	opening sync.Mutex

	mu       sync.Mutex
	streams  map[uint32]*Stream
	nextID   uint32
	goneAway bool  // the peer sent a GoAway
	err      error // why the session ended; set once

	accepts chan *Stream  // streams opened by the peer, not yet accepted
	done    chan struct{} // closed when the session ends

	// The keep-alive's outstanding ping, if any.
	pingID    uint32
	pingTimer *time.Timer

	// Reading the connection (read.go). lead holds its token while no
	// goroutine reads; lease fires a while after the last to read gave it
	// back, for the session's reader to take it if it is still there.
	// The data frame being read: body bytes still to come, for
	// bodyStream, whose flags are taken once all are read.
	lead       chan struct{}
	lease      *time.Timer
	body       uint32
	bodyStream *Stream
	bodyFlags  uint16
	// grown is how much the streams' windows grew beyond WindowSize.
	grown atomic.Int64

	// The round trip (rtt.go): the pings sent; when the last went, until
	// answered; the lowest round trip measured, in ns, 0 until then.
	rttPings int
	rttSent  time.Time
	rttNs    atomic.Int64
}

func newSession(conn io.ReadWriteCloser, under *HoldConn, log *zap.Logger, opens bool) *Session {
	s := &Session{
		conn:    conn,
		under:   under,
		reader:  bufio.NewReaderSize(conn, readBuffer),
		log:     log,
		opens:   opens,
		streams: make(map[uint32]*Stream),
		done:    make(chan struct{}),
		lead:    make(chan struct{}, 1),
		// The session's own reader reads first.
		lease: time.NewTimer(0),
	}
	s.lead <- struct{}{}
	if opens {
		s.nextID = 1
	} else {
		s.accepts = make(chan *Stream, Backlog)
	}
	s.w = newWriter(conn, under, s.writeFailed)
	go s.readFrames()
	return s
}

// readBuffer is the size of the session's read buffer: frame bodies of
// this size or more are read past it.
const readBuffer = 4 << 10

// Open opens a stream whose first bytes are opening(id), id being the
// stream's id, sent in the frame that opens it. Streams open one at a
// time: the peer sees their ids grow.
func (s *Session) Open(opening func(id uint32) []byte) (*Stream, error) {
	s.opening.Lock()
	defer s.opening.Unlock()
	s.mu.Lock()
	switch {
	case s.err != nil:
		s.mu.Unlock()
		return nil, ErrSessionShutdown
	case s.goneAway:
		s.mu.Unlock()
		return nil, ErrRemoteGoAway
	case !s.opens:
		s.mu.Unlock()
		return nil, errors.New("the agent's side opens no streams")
	case s.nextID >= 1<<32-2:
		s.mu.Unlock()
		return nil, ErrStreamsExhausted
	}
	id := s.nextID
	s.nextID += 2
	body := opening(id)
	if len(body) > maxFrame {
		s.mu.Unlock()
		return nil, fmt.Errorf("a stream's opening of %d bytes is above the largest frame", len(body))
	}
	st := newStream(s, id)
	st.sendWindow -= uint32(len(body))
	s.streams[id] = st
	var ping []byte
	if s.rttPings < rttSamples && s.rttSent.IsZero() {
		// One of the connection's first streams: a round-trip ping goes
		// with it.
		s.rttPings++
		h := makeHeader(typePing, flagSYN, 0, rttPing)
		ping = h[:]
		s.rttSent = time.Now()
	}
	s.mu.Unlock()

	if err := s.w.writeAfter(ping, makeHeader(typeData, flagSYN, id, uint32(len(body))), body); err != nil {
		// The session has ended, or is ending: by the time Open returns,
		// it has, so that the caller can tell and try another.
		st.forget()
		s.writeFailed(err)
		return nil, err
	}
	return st, nil
}

// writeFailed ends the session for a failed write on its connection.
func (s *Session) writeFailed(err error) {
	s.shutdown(fmt.Errorf("writing to the multiplexed connection: %w", err))
}

// Accept waits for the next stream the peer opens.
func (s *Session) Accept(ctx context.Context) (*Stream, error) {
	select {
	case st := <-s.accepts:
		return st, nil
	case <-s.done:
		return nil, ErrSessionShutdown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// NumStreams returns how many streams are open.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Done returns a channel that is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// IsClosed reports whether the session has ended.
func (s *Session) IsClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close ends the session and every stream on it, once what is queued
// has gone out or closeDrain passed: the last frames of the streams that
// ended, which a peer that reads gets at once.
func (s *Session) Close() error {
	s.w.drain(closeDrain)
	s.shutdown(ErrSessionShutdown)
	return nil
}

// closeDrain bounds how long Close waits for what is queued.
const closeDrain = 100 * time.Millisecond

// shutdown ends the session for err, once.
func (s *Session) shutdown(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	streams := s.streams
	s.streams = make(map[uint32]*Stream)
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	s.lease.Stop()
	close(s.done)
	s.mu.Unlock()
	s.w.fail(net.ErrClosed)
	if s.under != nil {
		// Under TLS, close the connection beneath first, so that a write
		// in flight fails at once rather than hold up TLS's close_notify.
		s.under.Close()
	}
	s.conn.Close()
	for _, st := range streams {
		st.sessionEnded()
	}
	if !errors.Is(err, ErrSessionShutdown) {
		s.log.Debug("multiplexed connection ended", zap.Error(err))
	}
}

// removeStream forgets the stream with id, which has ended.
func (s *Session) removeStream(id uint32) {
	s.mu.Lock()
	delete(s.streams, id)
	s.mu.Unlock()
}

// incoming registers a stream the peer opens, and returns it, or nil
// when it was refused with a reset.
func (s *Session) incoming(id uint32) (*Stream, error) {
	if s.opens {
		// The gateway's side accepts no streams.
		s.w.send(makeHeader(typeWindowUpdate, flagRST, id, 0))
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, nil
	}
	if _, dup := s.streams[id]; dup {
		return nil, protocolError{fmt.Sprintf("stream %d opened twice", id)}
	}
	st := newStream(s, id)
	st.ack = true
	select {
	case s.accepts <- st:
		s.streams[id] = st
		return st, nil
	default:
		s.log.Debug("the backlog of streams not yet accepted is full: resetting a new stream", zap.Uint32("stream", id))
		s.w.send(makeHeader(typeWindowUpdate, flagRST, id, 0))
		return nil, nil
	}
}

// ping answers the peer's ping, or takes the answer to the keep-alive's
// or the round-trip ping.
func (s *Session) ping(h *header) {
	if h.flags()&flagSYN != 0 {
		s.w.send(makeHeader(typePing, flagACK, 0, h.length()))
		return
	}
	if h.flags()&flagACK == 0 {
		return
	}
	if s.opens && h.length() == rttPing {
		s.rttAnswered()
		return
	}
	s.mu.Lock()
	if s.pingTimer != nil && h.length() == s.pingID {
		s.pingTimer.Stop()
		s.pingTimer = nil
	}
	s.mu.Unlock()
}

// goAway notes that the peer opens, and takes, no more streams.
func (s *Session) goAway(h *header) {
	s.mu.Lock()
	s.goneAway = true
	s.mu.Unlock()
	if code := h.length(); code != goAwayNormal {
		s.log.Debug("the peer is going away", zap.Uint32("code", code))
	}
}

// keepAlive pings the peer every interval and ends the session when a
// ping goes unanswered for writeTimeout.
func (s *Session) keepAlive(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-ticker.C:
		}
		s.mu.Lock()
		if s.err != nil || s.pingTimer != nil {
			// Ended, or the last ping is still within its time.
			s.mu.Unlock()
			continue
		}
		s.pingID++
		id := s.pingID
		s.pingTimer = time.AfterFunc(writeTimeout, func() { s.shutdown(ErrKeepAliveTimeout) })
		s.mu.Unlock()
		if s.w.write(makeHeader(typePing, flagSYN, 0, id), nil) != nil {
			return
		}
	}
}

// addr is the address of a session that runs on a connection without
// one.
type addr struct{}

func (addr) Network() string { return "mux" }
func (addr) String() string  { return "mux" }

// localAddr and remoteAddr are those of the session's connection.
func (s *Session) localAddr() net.Addr {
	if c, ok := s.conn.(interface{ LocalAddr() net.Addr }); ok {
		return c.LocalAddr()
	}
	return addr{}
}

func (s *Session) remoteAddr() net.Addr {
	if c, ok := s.conn.(interface{ RemoteAddr() net.Addr }); ok {
		return c.RemoteAddr()
	}
	return addr{}
}
