package mux

import "time"

// The connection's round trip. The gateway's side pings in the same write
// as the frame that opens the connection's first stream, when nothing is
// queued on the connection either way, so that the answer measures the
// path and not a queue: on a long path a window is used up once per round
// trip, so a window whose updates come within it is held back by the
// path, not by its reader (Stream.windowUpdateLocked).
const (
	// rttPing is the id of the round-trip ping, apart from the
	// keep-alive's, which count up from 1.
	rttPing = 1 << 31
	// maxRTT bounds the round trip that a window's growth allows for,
	// however late a peer answers.
	maxRTT = 250 * time.Millisecond
)

// rttAnswered takes the answer to the round-trip ping.
func (s *Session) rttAnswered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rttSent.IsZero() {
		s.rttNs.Store(int64(min(time.Since(s.rttSent), maxRTT)))
		s.rttSent = time.Time{}
	}
}

// roundTrip returns the round trip measured, or 0 when there is none.
func (s *Session) roundTrip() time.Duration { return time.Duration(s.rttNs.Load()) }
