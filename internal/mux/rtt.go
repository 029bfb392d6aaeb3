package mux

import "time"

// The connection's round trip. The gateway's side pings in the same write
// as the frames that open the connection's first few streams, one ping at
// a time, and keeps the lowest answer: a stream's opening is when nothing
// is usually queued on the connection, so that the answer measures the
// path and not a queue, and the lowest of a few is the path's even when
// one answer was held up. On a long path a window is used up once per
// round trip, so a window whose updates come within it is held back by
// the path, not by its reader (Stream.windowUpdateLocked).
const (
	// rttPing is the id of the round-trip pings, apart from the
	// keep-alive's, which count up from 1.
	rttPing = 1 << 31
	// rttSamples is how many round-trip pings a connection sends.
	rttSamples = 3
	// maxRTT bounds the round trip that a window's growth allows for,
	// however late a peer answers.
	maxRTT = 250 * time.Millisecond
)

// rttAnswered takes the answer to a round-trip ping.
func (s *Session) rttAnswered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rttSent.IsZero() {
		return
	}
	rtt := min(time.Since(s.rttSent), maxRTT)
	if old := time.Duration(s.rttNs.Load()); old == 0 || rtt < old {
		s.rttNs.Store(int64(rtt))
	}
	s.rttSent = time.Time{}
}

// roundTrip returns the round trip measured, or 0 when there is none.
func (s *Session) roundTrip() time.Duration { return time.Duration(s.rttNs.Load()) }
