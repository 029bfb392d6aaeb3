package mux

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// maxFrame bounds the body of a data frame that a write sends.
const maxFrame = 128 << 10

// Sizes of the pooled buffers that hold a stream's received bytes until
// they are read: a stream's first bytes, when they are few (a session's
// opening), take a small one, so that streams opened and left unread
// cost little.
const (
	chunkSize      = 16 << 10
	smallChunkSize = 512
)

var (
	chunks      = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	smallChunks = sync.Pool{New: func() any { b := make([]byte, smallChunkSize); return &b }}
)

// getChunk returns a pooled buffer for n bytes, a small one when first
// is set and n fits.
func getChunk(n int, first bool) *[]byte {
	if first && n <= smallChunkSize {
		return smallChunks.Get().(*[]byte)
	}
	return chunks.Get().(*[]byte)
}

// putChunk gives a buffer of getChunk back.
func putChunk(buf *[]byte) {
	if len(*buf) == smallChunkSize {
		smallChunks.Put(buf)
		return
	}
	chunks.Put(buf)
}

// chunk is a pooled buffer of received bytes: those in [start, end) are
// not read yet.
type chunk struct {
	buf        *[]byte
	start, end int
}

// Stream is one stream of a session, a net.Conn.
type Stream struct {
	s  *Session
	id uint32

	// readReady and writeReady wake a read or a write that waits, when
	// bytes arrive or the send window grows, a deadline moves, or the
	// stream or session ends.
	readReady  chan struct{}
	writeReady chan struct{}
	// waitingReads counts the Reads that wait for bytes and would read
	// the connection (no deadline, a large buffer): whoever reads it gives
	// them the lead when it delivers some.
	waitingReads atomic.Int32

	mu sync.Mutex
	// Received bytes not read yet: recvLen of them in recv.
	recv    []chunk
	recvLen int
	// filling is set while whoever reads the connection reads a frame's
	// body into the last chunk's free space.
	filling bool
	// recvWindow is how much the peer may still send before the next
	// window update; sendWindow how much this side may. recvTarget is the
	// window this side gives, lastUpdate when it last gave it back.
	recvWindow uint32
	sendWindow uint32
	recvTarget uint32
	lastUpdate time.Time
	// ack is set until the first frame sent answers the peer's opening
	// with the ACK flag.
	ack bool
	// The stream's ends: remoteClosed when the peer sent its FIN,
	// localClosed when Close sent ours, reset when either side reset it.
	remoteClosed, localClosed, reset bool
	sessionGone                      bool
	removed                          bool // taken out of the session
	closeTimer                       *time.Timer
	readDeadline, writeDeadline      time.Time
}

func newStream(s *Session, id uint32) *Stream {
	return &Stream{
		s:          s,
		id:         id,
		readReady:  make(chan struct{}, 1),
		writeReady: make(chan struct{}, 1),
		recvWindow: WindowSize,
		sendWindow: WindowSize,
		recvTarget: WindowSize,
		lastUpdate: time.Now(),
	}
}

// StreamID returns the stream's id.
func (st *Stream) StreamID() uint32 { return st.id }

// notify wakes whoever waits on ready.
func notify(ready chan struct{}) {
	select {
	case ready <- struct{}{}:
	default:
	}
}

// wait waits on ready until deadline, or the session ends.
func (st *Stream) wait(ready chan struct{}, deadline time.Time) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return ErrTimeout
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-ready:
	case <-st.s.done:
	case <-expired:
		return ErrTimeout
	}
	return nil
}

// Read reads what the peer sent: io.EOF once it closed its side and all
// is read. With nothing to read, a Read into a buffer of directRead bytes
// or more reads the connection for the session (read.go), unless it has a
// deadline.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	st.mu.Lock()
	n := 0
	yielded := false
	for st.recvLen == 0 && n == 0 {
		var err error
		switch {
		case st.reset:
			err = ErrStreamReset
		case st.remoteClosed:
			err = io.EOF
		case st.sessionGone || st.s.IsClosed():
			err = ErrSessionShutdown
		}
		if err != nil {
			st.mu.Unlock()
			// Another reader waits for the same news.
			notify(st.readReady)
			return 0, err
		}
		deadline := st.readDeadline
		leads := deadline.IsZero() && len(p) >= directRead
		if leads && !yielded && st.s.tryLead() {
			st.mu.Unlock()
			n, yielded = st.readLeading(p)
			st.mu.Lock()
			continue
		}
		yielded = false
		if leads {
			st.waitingReads.Add(1)
		}
		st.mu.Unlock()
		err = st.wait(st.readReady, deadline)
		if leads {
			st.waitingReads.Add(-1)
		}
		if err != nil {
			return 0, err
		}
		st.mu.Lock()
	}
	for n < len(p) && st.recvLen > 0 {
		c := &st.recv[0]
		k := copy(p[n:], (*c.buf)[c.start:c.end])
		c.start += k
		n += k
		st.recvLen -= k
		if c.start == c.end && (len(st.recv) > 1 || !st.filling) {
			putChunk(c.buf)
			st.recv[0] = chunk{}
			st.recv = st.recv[1:]
		}
	}
	if len(st.recv) == 0 {
		st.recv = nil
	}
	if st.recvLen > 0 {
		// Another reader may wait for what is left.
		notify(st.readReady)
	}
	update, send := st.windowUpdateLocked()
	st.mu.Unlock()
	if send {
		// A failed update ends the session, which the next read reports.
		_ = st.s.w.write(update, nil)
	}
	return n, nil
}

// windowUpdateLocked returns the window update to send, if one is due:
// the peer gets back the window it used once half of it is read, as yamux
// does. The window doubles, up to MaxWindow, when the reader has read
// everything and the peer used half of it within growWithin: then the
// window, not the reader, holds the stream back; or within the round
// trip, on a long path (at the gateway, which measures it). It halves
// again, down to WindowSize, when an update finds bytes unread: the reader
// fell behind. So a stream read slowly keeps or gets back the first
// window, a fast one has no more in flight than the connection carries in
// about 4 × growWithin or 4 round trips (which bounds how long its bytes
// hold up other streams' behind them), and the session's windows grow by
// growthBudget at most.
func (st *Stream) windowUpdateLocked() (header, bool) {
	target := int64(st.recvTarget)
	if target-int64(st.recvLen)-int64(st.recvWindow) < target/2 || st.sessionGone || st.reset {
		return header{}, false
	}
	now := time.Now()
	switch {
	case st.recvLen == 0 && target < MaxWindow && !st.removed && st.fastUpdate(now):
		if st.s.grown.Add(target) <= growthBudget {
			target *= 2
		} else {
			st.s.grown.Add(-target) // over the budget: no growth
		}
	case st.recvLen > 0 && target > WindowSize:
		target /= 2
		st.s.grown.Add(-target)
	}
	st.recvTarget = uint32(target)
	delta := target - int64(st.recvLen) - int64(st.recvWindow)
	if delta <= 0 {
		return header{}, false
	}
	st.lastUpdate = now
	st.recvWindow += uint32(delta)
	return makeHeader(typeWindowUpdate, st.takeACK(), st.id, uint32(delta)), true
}

// fastUpdate reports whether a window update due now comes soon after the
// last: within growWithin, or within the connection's round trip.
func (st *Stream) fastUpdate(now time.Time) bool {
	since := now.Sub(st.lastUpdate)
	return since < growWithin || since < st.s.roundTrip()
}

// growWithin is how soon after the last window update the next must be
// due for the window to grow, whatever the round trip.
const growWithin = 10 * time.Millisecond

// growthBudget bounds how much a session's windows grow in all beyond
// WindowSize each, so that the bytes it may have to hold for readers
// that stall stay bounded however many streams start fast.
const growthBudget = 16 << 20

// dropGrowthLocked gives back to the session what st's window grew, once
// st is taken out of it.
func (st *Stream) dropGrowthLocked() {
	if st.recvTarget > WindowSize {
		st.s.grown.Add(-int64(st.recvTarget - WindowSize))
		st.recvTarget = WindowSize
	}
}

// takeACK returns the flags of the next frame sent: ACK on the first
// frame of a stream the peer opened.
func (st *Stream) takeACK() uint16 {
	if st.ack {
		st.ack = false
		return flagACK
	}
	return 0
}

// Write sends p, waiting while the peer's window is used up.
func (st *Stream) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		st.mu.Lock()
		for st.sendWindow == 0 || st.localClosed || st.reset || st.sessionGone {
			var err error
			switch {
			case st.reset:
				err = ErrStreamReset
			case st.localClosed:
				err = ErrStreamClosed
			case st.sessionGone:
				err = ErrSessionShutdown
			}
			if err != nil {
				st.mu.Unlock()
				// Another writer waits for the same news.
				notify(st.writeReady)
				return written, err
			}
			deadline := st.writeDeadline
			st.mu.Unlock()
			if err := st.wait(st.writeReady, deadline); err != nil {
				return written, err
			}
			st.mu.Lock()
		}
		n := min(len(p)-written, maxFrame)
		if uint32(n) > st.sendWindow {
			n = int(st.sendWindow)
		}
		st.sendWindow -= uint32(n)
		if st.sendWindow > 0 {
			// Another writer may wait for the window that is left.
			notify(st.writeReady)
		}
		h := makeHeader(typeData, st.takeACK(), st.id, uint32(n))
		st.mu.Unlock()
		if err := st.s.w.write(h, p[written:written+n]); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// Close sends the stream's FIN. The stream ends when the peer's FIN
// arrives, or is reset after closeTimeout without one.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.localClosed || st.reset || st.sessionGone {
		st.mu.Unlock()
		return nil
	}
	st.localClosed = true
	h := makeHeader(typeWindowUpdate, flagFIN|st.takeACK(), st.id, 0)
	ended := st.remoteClosed
	if !ended {
		st.closeTimer = time.AfterFunc(closeTimeout, st.closeTimedOut)
	}
	st.mu.Unlock()
	notify(st.writeReady)
	err := st.s.w.write(h, nil)
	if ended {
		st.forget()
	}
	return err
}

// closeTimedOut resets a stream whose peer did not close it in time.
func (st *Stream) closeTimedOut() {
	st.mu.Lock()
	if st.removed || st.reset {
		st.mu.Unlock()
		return
	}
	st.reset = true
	st.mu.Unlock()
	st.s.w.send(makeHeader(typeWindowUpdate, flagRST, st.id, 0))
	st.forget()
}

// forget takes the stream out of its session and lets go of what it
// received.
func (st *Stream) forget() {
	st.mu.Lock()
	if st.removed {
		st.mu.Unlock()
		return
	}
	st.removed = true
	if st.closeTimer != nil {
		st.closeTimer.Stop()
	}
	st.dropGrowthLocked()
	st.releaseLocked()
	st.mu.Unlock()
	notify(st.readReady)
	notify(st.writeReady)
	st.s.removeStream(st.id)
}

// releaseLocked gives back the chunks that nothing reads or fills.
func (st *Stream) releaseLocked() {
	if st.filling || !(st.reset || st.localClosed || st.sessionGone) {
		return
	}
	for _, c := range st.recv {
		putChunk(c.buf)
	}
	st.recv, st.recvLen = nil, 0
}

// sessionEnded wakes whoever waits on a stream of a session that ended.
func (st *Stream) sessionEnded() {
	st.mu.Lock()
	st.sessionGone = true
	st.removed = true
	st.dropGrowthLocked()
	if st.closeTimer != nil {
		st.closeTimer.Stop()
	}
	st.mu.Unlock()
	notify(st.readReady)
	notify(st.writeReady)
}

// windowUpdate takes a window update frame's flags and delta.
func (st *Stream) windowUpdate(flags uint16, delta uint32) {
	st.mu.Lock()
	// A peer's delta that would wrap the window around is ignored.
	st.sendWindow = max(st.sendWindow+delta, st.sendWindow)
	st.mu.Unlock()
	notify(st.writeReady)
	st.flags(flags)
}

// flags takes a frame's FIN and RST.
func (st *Stream) flags(flags uint16) {
	if flags&(flagFIN|flagRST) == 0 {
		return
	}
	st.mu.Lock()
	ended := false
	if flags&flagFIN != 0 {
		st.remoteClosed = true
		ended = st.localClosed
	}
	if flags&flagRST != 0 {
		st.reset = true
		ended = true
	}
	st.mu.Unlock()
	notify(st.readReady)
	notify(st.writeReady)
	if ended {
		st.forget()
	}
}

// admit checks that a data frame's body of n bytes is within the
// stream's window.
func (st *Stream) admit(n uint32) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if n > st.recvWindow {
		return protocolError{"a stream's data went past its window"}
	}
	return nil
}

// receive reads n bytes of a data frame's body from r into the stream's
// buffer.
func (st *Stream) receive(n uint32, r *bufio.Reader) error {
	st.mu.Lock()
	// Fill the last chunk's free space first, so that many small
	// frames take no more memory than their bytes.
	var tail *chunk
	if len(st.recv) > 0 && st.recv[len(st.recv)-1].end < len(*st.recv[len(st.recv)-1].buf) {
		tail = &st.recv[len(st.recv)-1]
	}
	tailEnd := 0
	if tail != nil {
		tailEnd = tail.end
		st.filling = true
	}
	first := len(st.recv) == 0
	st.mu.Unlock()

	left := int(n)
	var err error
	if tail != nil {
		k := min(left, len(*tail.buf)-tailEnd)
		_, err = io.ReadFull(r, (*tail.buf)[tailEnd:tailEnd+k])
		tailEnd += k
		left -= k
	}
	var added []chunk
	for left > 0 && err == nil {
		buf := getChunk(left, first && len(added) == 0)
		k := min(left, len(*buf))
		_, err = io.ReadFull(r, (*buf)[:k])
		added = append(added, chunk{buf: buf, end: k})
		left -= k
	}

	st.mu.Lock()
	if err != nil {
		// The connection ended within the frame, which ends the
		// session: drop what arrived of the frame, lest a read get the
		// bytes that did not, which a pooled chunk holds from before.
		st.filling = false
		for _, c := range added {
			putChunk(c.buf)
		}
		st.releaseLocked()
		st.mu.Unlock()
		return err
	}
	if tail != nil {
		// The reader does not take the chunk away while filling is
		// set, but may have moved on within it: find it again.
		st.recv[len(st.recv)-1].end = tailEnd
		st.filling = false
	}
	st.recv = append(st.recv, added...)
	// The window shrinks as the bytes arrive, not before: a read
	// meanwhile gives back only what it has read.
	st.recvWindow -= n
	st.recvLen += int(n)
	st.releaseLocked()
	st.mu.Unlock()
	notify(st.readReady)
	return nil
}

// SetDeadline sets the read and write deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	_ = st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	st.readDeadline = t
	st.mu.Unlock()
	notify(st.readReady)
	return nil
}

// SetWriteDeadline sets the write deadline.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.writeDeadline = t
	st.mu.Unlock()
	notify(st.writeReady)
	return nil
}

// LocalAddr returns the local address of the session's connection.
func (st *Stream) LocalAddr() net.Addr { return st.s.localAddr() }

// RemoteAddr returns the remote address of the session's connection.
func (st *Stream) RemoteAddr() net.Addr { return st.s.remoteAddr() }
