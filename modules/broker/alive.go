package broker

import (
	"container/heap"
	"math"
	"sync"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// maxAliveWindow bounds how early a registration's ALIVE may go to share
// its burst with others'.
const maxAliveWindow = time.Second

// aliveWindowFor is how early an ALIVE may go for an alive interval: a
// fraction of it, at most maxAliveWindow. It is also the shortest wait
// between two rounds of the sweep, so that one round sends every ALIVE
// due within it.
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
	// sooner wakes the sweep when a registration's turn comes before the
	// one it sleeps until.
	sooner chan struct{}
	next   int64 // when the sweep wakes next, in Unix nanoseconds
}

func newAliveSweep() *aliveSweep {
	return &aliveSweep{sooner: make(chan struct{}, 1)}
}

// add puts a new registration in the queue.
func (s *aliveSweep) add(r *registration) {
	at := r.turnAfter(r.lastSent.Load())
	s.mu.Lock()
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
		wait := s.round(time.Now().UnixNano())
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
// silent for their dead time, and returns how long to sleep: until the
// next turn, and at least the window of its registration.
func (s *aliveSweep) round(now int64) time.Duration {
	var alive, dead []*registration
	s.mu.Lock()
	for len(s.queue) > 0 && s.queue[0].at <= now {
		r := s.queue[0].r
		if r.closed() {
			heap.Pop(&s.queue)
			continue
		}
		if now-r.lastHeard.Load() >= int64(r.settings.Dead) {
			heap.Pop(&s.queue)
			dead = append(dead, r)
			continue
		}
		sent := r.lastSent.Load()
		if now+int64(aliveWindowFor(r.settings.Alive))-sent >= int64(r.settings.Alive) && r.aliveSending.CompareAndSwap(false, true) {
			alive = append(alive, r)
			sent = now
		}
		// A turn that finds a write held up comes back a window later.
		s.queue[0].at = max(r.turnAfter(sent), now+int64(aliveWindowFor(r.settings.Alive)))
		heap.Fix(&s.queue, 0)
	}
	wait, next := time.Duration(math.MaxInt64), int64(math.MaxInt64)
	if len(s.queue) > 0 {
		top := s.queue[0]
		wait = max(time.Duration(top.at-now), aliveWindowFor(top.r.settings.Alive))
		next = now + int64(wait)
	}
	s.next = next
	s.mu.Unlock()
	for _, r := range alive {
		// Each on its own: one connection whose peer stopped reading must
		// not hold up the others' ALIVEs, and has one at most in flight
		// until its write times out.
		go r.sendAlive()
	}
	for _, r := range dead {
		go r.close(0, "the agent was silent for "+r.settings.Dead.String())
	}
	return wait
}

// turnAfter is when the sweep must look at r next if it last sent a frame
// at sent, in Unix nanoseconds: when its ALIVE may go, a window before
// its alive interval ends, or when its dead time ends, whichever comes
// first.
func (r *registration) turnAfter(sent int64) int64 {
	mayAlive := sent + int64(r.settings.Alive-aliveWindowFor(r.settings.Alive))
	return min(mayAlive, r.lastHeard.Load()+int64(r.settings.Dead))
}

// sendAlive sends an ALIVE, and closes the registration if it cannot.
func (r *registration) sendAlive() {
	defer r.aliveSending.Store(false)
	if err := r.send(wire.Frame{Type: wire.FrameAlive}); err != nil {
		r.close(0, "control connection lost: "+err.Error())
	}
}

// aliveTurn is a registration's place in the sweep's queue.
type aliveTurn struct {
	at int64 // Unix nanoseconds
	r  *registration
}

// aliveQueue is a heap of turns, the earliest first; each registration
// knows its place, so that it can leave when it closes.
type aliveQueue []aliveTurn

func (q aliveQueue) Len() int           { return len(q) }
func (q aliveQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q aliveQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].r.queued, q[j].r.queued = i+1, j+1
}

func (q *aliveQueue) Push(x any) {
	t := x.(aliveTurn)
	*q = append(*q, t)
	t.r.queued = len(*q)
}

func (q *aliveQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = aliveTurn{}
	*q = old[:len(old)-1]
	t.r.queued = 0
	return t
}
