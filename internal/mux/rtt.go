package mux

import "time"

// The connection's round trip, measured with a ping of its own when a
// stream's window would grow but for the time its updates take
// (Stream.windowUpdateLocked): on a long path a window is used up once per
// round trip, so a window that the round trip, not the reader, holds back
// grows there too.
const (
	// rttPing marks the ids of the round-trip pings, apart from the
	// keep-alive's.
	rttPing = 1 << 31
	// rttMaxAge is how long a measurement stands before it is taken again.
	rttMaxAge = time.Minute
	// rttLost is how long a round-trip ping may go unanswered before
	// another is sent.
	rttLost = 10 * time.Second
	// maxRTT bounds the round trip that a window's growth allows for.
	maxRTT = time.Second
)

// roundTrip returns the last round trip measured, or 0, and sends a ping
// to measure it when there is none or it is old, unless one is on its way.
func (s *Session) roundTrip(now time.Time) time.Duration {
	at, sent := s.rttAt.Load(), s.rttSent.Load()
	stale := at == 0 || now.UnixNano()-at > int64(rttMaxAge)
	if stale && now.UnixNano()-sent > int64(rttLost) && s.rttSent.CompareAndSwap(sent, now.UnixNano()) {
		id := rttPing | s.rttID.Add(1)&(rttPing-1)
		s.rttPending.Store(id)
		s.w.send(makeHeader(typePing, flagSYN, 0, id))
	}
	return min(time.Duration(s.rttNs.Load()), maxRTT)
}

// rttAnswered takes the answer to a round-trip ping.
func (s *Session) rttAnswered(id uint32) {
	if !s.rttPending.CompareAndSwap(id, 0) {
		return
	}
	now := time.Now().UnixNano()
	s.rttNs.Store(now - s.rttSent.Load())
	s.rttAt.Store(now)
	s.rttSent.Store(0)
}
