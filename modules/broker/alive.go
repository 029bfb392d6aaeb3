package broker

import (
	"container/heap"
	"math"
	"sync"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// clockStart anchors the sweep's clock: a registration's times are the
// nanoseconds since it, on the monotonic clock, so that a step of the wall
// clock (an NTP correction, a resumed virtual machine) neither closes
// registrations nor holds their ALIVEs back.
var clockStart = time.Now()

// clock is the time on the sweep's clock.
func clock() int64 { return int64(time.Since(clockStart)) }

// maxAliveWindow bounds how early a registration's ALIVE may go to share
// its burst with others'.
const maxAliveWindow = time.Second

// aliveWindowFor is how early an ALIVE may go for an alive interval: a
// fraction of it, at most maxAliveWindow. The shortest window of those
// queued is also the shortest wait between two rounds of the sweep, so
// that one round sends every ALIVE due within it.
func aliveWindowFor(alive time.Duration) time.Duration {
	return min(max(alive/4, 10*time.Millisecond), maxAliveWindow)
}

// aliveSweep keeps every registered control connection alive and watches
// it for silence, with one goroutine and one timer for all of them: the
// ALIVEs due within a window go out in one burst, and the agents, which
// answer at once, are heard in the same one; thousands of idle agents
// cost a wake-up or two a round, not one each. Its queue holds each
// registration once, ordered by its next turn: when its ALIVE may go (up
// to a window before it is due) or its dead time runs out, whichever is
// first. A registration that sent or heard something meanwhile is put back
// for later when its turn comes, so frames cost the sweep nothing.
type aliveSweep struct {
	mu    sync.Mutex
	queue aliveQueue
	// inFlight holds the ALIVEs sent off and not yet seen written, the
	// oldest first: they go without a write deadline (whose timer, armed
	// for each of thousands of ALIVEs and firing for nothing, was 6-7 % of
	// an idle gateway's CPU), and a round closes a registration whose
	// ALIVE is not written (or still waits for another frame's write)
	// frameWriteTimeout after it was sent off.
	inFlight []aliveInFlight
	// sooner wakes the sweep when a registration's turn comes before the
	// one it sleeps until.
	sooner chan struct{}
	next   int64 // when the sweep wakes next, on its clock
}

func newAliveSweep() *aliveSweep {
	return &aliveSweep{sooner: make(chan struct{}, 1)}
}

// add puts a new registration in the queue, unless it was closed.
func (s *aliveSweep) add(r *registration) {
	at := r.turnAfter(r.lastSent.Load())
	s.mu.Lock()
	if r.closed() {
		// Its close may have found nothing to remove.
		s.mu.Unlock()
		return
	}
	heap.Push(&s.queue, aliveTurn{at: at, r: r})
	sooner := at < s.next
	s.mu.Unlock()
	if sooner {
		select {
		case s.sooner <- struct{}{}:
		default:
		}
	}
}

// remove takes a closed registration out of the queue.
func (s *aliveSweep) remove(r *registration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.queued > 0 {
		heap.Remove(&s.queue, r.queued-1)
	}
}

// run sweeps until stopped is closed.
func (s *aliveSweep) run(stopped <-chan struct{}) {
	timer := time.NewTimer(maxAliveWindow)
	defer timer.Stop()
	for {
		wait := s.round(clock())
		timer.Reset(wait)
		select {
		case <-stopped:
			return
		case <-timer.C:
		case <-s.sooner:
		}
	}
}

// round sends the ALIVEs that may go at now, closes the registrations
// silent for their dead time or whose ALIVE is held up, and returns how
// long to sleep: until the next turn, and at least the shortest window of
// those queued; or until the oldest ALIVE in flight would be held up, if
// that comes first: a round that sent ALIVEs wakes again frameWriteTimeout
// later, unless turns wake it before (as they do with many agents).
func (s *aliveSweep) round(now int64) time.Duration {
	var alive, dead []*registration
	s.mu.Lock()
	stuck := s.watchInFlight(now)
	for len(s.queue.turns) > 0 && s.queue.turns[0].at <= now {
		r := s.queue.turns[0].r
		if now-r.lastHeard.Load() >= int64(r.settings.Dead) {
			heap.Pop(&s.queue)
			dead = append(dead, r)
			continue
		}
		sent := r.lastSent.Load()
		if now+int64(aliveWindowFor(r.settings.Alive))-sent >= int64(r.settings.Alive) && r.aliveSince.CompareAndSwap(0, now) {
			alive = append(alive, r)
			s.inFlight = append(s.inFlight, aliveInFlight{r: r, since: now})
			sent = now
		}
		// A turn that finds a write held up comes back a window later.
		s.queue.turns[0].at = max(r.turnAfter(sent), now+int64(aliveWindowFor(r.settings.Alive)))
		heap.Fix(&s.queue, 0)
	}
	wait := time.Duration(math.MaxInt64)
	if len(s.queue.turns) > 0 {
		wait = max(time.Duration(s.queue.turns[0].at-now), s.queue.shortestWindow())
	}
	if len(s.inFlight) > 0 {
		wait = min(wait, time.Duration(s.inFlight[0].since-now)+frameWriteTimeout)
	}
	s.next = later(now, wait)
	s.mu.Unlock()
	for _, r := range alive {
		// Each on its own: one connection whose peer stopped reading must
		// not hold up the others' ALIVEs, and has one at most in flight
		// until the sweep closes it.
		go r.sendAlive()
	}
	for _, r := range stuck {
		go r.close(0, "the gateway's ALIVE could not be written to the agent within "+frameWriteTimeout.String())
	}
	for _, r := range dead {
		go r.close(0, "the agent was silent for "+r.settings.Dead.String())
	}
	return wait
}

// aliveInFlight is an ALIVE the sweep sent off at since, on its clock.
type aliveInFlight struct {
	r     *registration
	since int64
}

// watchInFlight forgets the ALIVEs written since the last round and
// returns the registrations whose ALIVE is not written frameWriteTimeout
// after it was sent off; s.mu is held.
func (s *aliveSweep) watchInFlight(now int64) (stuck []*registration) {
	kept := s.inFlight[:0]
	for _, a := range s.inFlight {
		switch {
		case a.r.aliveSince.Load() != a.since:
			// Written, and maybe another sent off since.
		case now-a.since >= int64(frameWriteTimeout):
			stuck = append(stuck, a.r)
		default:
			kept = append(kept, a)
		}
	}
	clear(s.inFlight[len(kept):])
	s.inFlight = kept
	return stuck
}

// turnAfter is when the sweep must look at r next if it last sent a frame
// at sent, on the sweep's clock: when its ALIVE may go, a window before
// its alive interval ends, or when its dead time ends, whichever comes
// first.
func (r *registration) turnAfter(sent int64) int64 {
	mayAlive := later(sent, r.settings.Alive-aliveWindowFor(r.settings.Alive))
	return min(mayAlive, later(r.lastHeard.Load(), r.settings.Dead))
}

// later returns t + d, at most the last time there is: a setting of
// centuries must not wrap around into the past.
func later(t int64, d time.Duration) int64 {
	if t > 0 && int64(d) > math.MaxInt64-t {
		return math.MaxInt64
	}
	return t + int64(d)
}

// sendAlive sends the sweep's ALIVE, with no write deadline: the sweep
// watches it. It closes the registration if the write fails.
func (r *registration) sendAlive() {
	defer r.aliveSince.Store(0)
	r.wmu.Lock()
	err := r.writeFrameLocked(wire.Frame{Type: wire.FrameAlive})
	r.wmu.Unlock()
	if err != nil {
		r.close(0, "control connection lost: "+err.Error())
	}
}

// aliveTurn is a registration's place in the sweep's queue.
type aliveTurn struct {
	at int64 // on the sweep's clock
	r  *registration
}

// aliveQueue is a heap of turns, the earliest first; each registration
// knows its place, so that it can leave when it closes. It counts the
// registrations of each window, to find the shortest.
type aliveQueue struct {
	turns   []aliveTurn
	windows map[time.Duration]int
}

func (q *aliveQueue) Len() int           { return len(q.turns) }
func (q *aliveQueue) Less(i, j int) bool { return q.turns[i].at < q.turns[j].at }
func (q *aliveQueue) Swap(i, j int) {
	q.turns[i], q.turns[j] = q.turns[j], q.turns[i]
	q.turns[i].r.queued, q.turns[j].r.queued = i+1, j+1
}

func (q *aliveQueue) Push(x any) {
	t := x.(aliveTurn)
	q.turns = append(q.turns, t)
	t.r.queued = len(q.turns)
	if q.windows == nil {
		q.windows = make(map[time.Duration]int)
	}
	q.windows[aliveWindowFor(t.r.settings.Alive)]++
}

func (q *aliveQueue) Pop() any {
	last := len(q.turns) - 1
	t := q.turns[last]
	q.turns[last] = aliveTurn{}
	q.turns = q.turns[:last]
	t.r.queued = 0
	w := aliveWindowFor(t.r.settings.Alive)
	if q.windows[w]--; q.windows[w] == 0 {
		delete(q.windows, w)
	}
	return t
}

// shortestWindow is the shortest window of the registrations queued, or
// maxAliveWindow when there are none.
func (q *aliveQueue) shortestWindow() time.Duration {
	shortest := maxAliveWindow
	for w := range q.windows {
		shortest = min(shortest, w)
	}
	return shortest
}
