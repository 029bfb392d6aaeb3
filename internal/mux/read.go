package mux

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Who reads the connection. One goroutine at a time reads frames and
// delivers them, the one that holds the session's lead: the session's
// own reader, or a stream's Read into a buffer of directRead bytes or
// more that found nothing to read. Such a Read reads its own stream's
// bytes straight into its caller's buffer, so that a busy stream (a
// download) costs no hand-off between goroutines and no copy through the
// stream's buffers; other streams' bytes it delivers to their buffers on
// the way. A Read gives the lead back when it returns; the session's
// reader takes it once nobody took it for leaseTime, so that a caller busy
// elsewhere holds up other streams' frames no longer than that each time.
// Whoever reads gives the lead away when it delivers bytes to a stream
// whose Read waits and would read the connection, which takes it when it
// reads again; a Read with a deadline never reads it. A deadline set
// while a Read reads the connection takes effect once the next frame
// arrives.

// directRead is the smallest buffer of a Read that reads the connection:
// a smaller one would hold the connection up at its caller's pace, and
// the Reads of streams that carry little (a request, a keystroke) cost
// fewer hand-offs of the lead when the session's reader serves them.
const directRead = 16 << 10

// leaseTime is how long the connection may go unread while the last
// stream to read it is away; a caller that writes what it read to a
// socket is back well within it.
const leaseTime = time.Millisecond

// tryLead takes the lead, unless another goroutine holds it.
func (s *Session) tryLead() bool {
	select {
	case <-s.lead:
		return true
	default:
		return false
	}
}

// release gives the lead back. The session's reader takes it once the
// lease, of d, runs out, unless a stream's Read takes it first.
func (s *Session) release(d time.Duration) {
	s.lead <- struct{}{}
	s.lease.Reset(d)
}

// readFrames is the session's reader: it reads whenever no stream's Read
// does, until the connection ends or the peer breaks the protocol.
func (s *Session) readFrames() {
	for {
		select {
		case <-s.lease.C:
		case <-s.done:
			return
		}
		if !s.tryLead() {
			// Whoever holds it starts the lease again when it lets go.
			continue
		}
		for {
			got, err := s.readFrame(nil)
			if err != nil {
				// Nobody reads the connection, which is out of step now,
				// while the session ends.
				s.readFailed(err)
				return
			}
			if got != nil && got.waitingReads.Load() > 0 {
				break
			}
		}
		s.release(leaseTime)
	}
}

// readFailed ends the session for a failed read or a breach of the
// protocol, which it tells the peer about.
func (s *Session) readFailed(err error) {
	var pe protocolError
	if errors.As(err, &pe) {
		s.w.send(makeHeader(typeGoAway, 0, 0, goAwayProtocol))
		s.w.drain(closeDrain)
	}
	s.shutdown(err)
}

// readFrame, called with the lead, reads the next frame, or the rest of
// the data frame being read, and delivers it. The body of a data frame
// for self is left for self's Read, which reads it into its caller's
// buffer. It returns the stream that received bytes in its buffer, if
// any.
func (s *Session) readFrame(self *Stream) (*Stream, error) {
	if s.body > 0 {
		return s.readBody()
	}
	var h header
	if _, err := io.ReadFull(s.reader, h[:]); err != nil {
		return nil, err
	}
	switch {
	case h.version() != protoVersion:
		return nil, protocolError{fmt.Sprintf("a frame of version %d", h.version())}
	case h.typ() == typeData || h.typ() == typeWindowUpdate:
		return s.streamFrame(&h, self)
	case h.typ() == typePing:
		s.ping(&h)
	case h.typ() == typeGoAway:
		s.goAway(&h)
	default:
		return nil, protocolError{fmt.Sprintf("a frame of type %d", h.typ())}
	}
	return nil, nil
}

// streamFrame handles a data or window update frame, whose header was
// read.
func (s *Session) streamFrame(h *header, self *Stream) (*Stream, error) {
	id, flags := h.streamID(), h.flags()
	var st *Stream
	if flags&flagSYN != 0 {
		var err error
		if st, err = s.incoming(id); err != nil {
			return nil, err
		}
	} else {
		s.mu.Lock()
		st = s.streams[id]
		s.mu.Unlock()
	}
	if st == nil {
		// A stream that ended here (say, reset): its data is dropped.
		if h.typ() == typeData && h.length() > 0 {
			if _, err := s.reader.Discard(int(h.length())); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if h.typ() == typeWindowUpdate {
		st.windowUpdate(flags, h.length())
		return nil, nil
	}
	n := h.length()
	if n == 0 {
		st.flags(flags)
		return nil, nil
	}
	if err := st.admit(n); err != nil {
		return nil, err
	}
	s.body, s.bodyStream, s.bodyFlags = n, st, flags
	if st == self {
		return nil, nil
	}
	return s.readBody()
}

// readBody reads the rest of the data frame being read into its stream's
// buffer, then takes the frame's flags.
func (s *Session) readBody() (*Stream, error) {
	st, n, flags := s.bodyStream, s.body, s.bodyFlags
	s.body, s.bodyStream = 0, nil
	if err := st.receive(n, s.reader); err != nil {
		return nil, err
	}
	st.flags(flags)
	return st, nil
}

// readLeading, called with the lead, reads the connection for the session
// until st has news: its next bytes, read into p (n), or bytes in its
// buffer, its end, or the session's. It gives the lead back when it
// returns; yielded reports that it gave it to another stream's waiting
// Read. A Read that ends its stream is not likely to read again: it
// leaves the connection to the session's reader at once.
func (st *Stream) readLeading(p []byte) (n int, yielded bool) {
	s := st.s
	lease := leaseTime
	defer func() { s.release(lease) }()
	for {
		if s.body > 0 && s.bodyStream == st {
			return st.readDirect(p), false
		}
		if news, ended := st.news(); news {
			if ended {
				lease = 0
			}
			return 0, false
		}
		got, err := s.readFrame(st)
		if err != nil {
			s.readFailed(err)
			return 0, false
		}
		if got != nil && got.waitingReads.Load() > 0 {
			return 0, true
		}
	}
}

// readDirect, called with the lead while the data frame being read is
// st's, reads its body into p, as much as fits. When the connection fails
// within it, it ends the session and returns 0: the piece of a cut frame
// that this Read was to read is not given.
func (st *Stream) readDirect(p []byte) int {
	s := st.s
	k := min(int(s.body), len(p))
	if _, err := io.ReadFull(s.reader, p[:k]); err != nil {
		s.body, s.bodyStream = 0, nil
		s.readFailed(err)
		return 0
	}
	s.body -= uint32(k)
	st.mu.Lock()
	st.recvWindow -= uint32(k)
	st.mu.Unlock()
	if s.body == 0 {
		s.bodyStream = nil
		st.flags(s.bodyFlags)
	}
	return k
}

// news reports whether a Read of st that reads the connection should
// return: bytes to read, the stream's or the session's end, or a read
// deadline set meanwhile; and ended, whether st has nothing more to read.
func (st *Stream) news() (news, ended bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	gone := st.reset || st.remoteClosed || st.sessionGone || st.s.IsClosed()
	return st.recvLen > 0 || gone || !st.readDeadline.IsZero(), st.recvLen == 0 && gone
}
