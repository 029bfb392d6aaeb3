package broker

import (
	"io"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// aliveRegistration adds a registration called name with the given alive
// interval and dead time (0: the default) to b, and returns the agent's
// end of its control connection.
func aliveRegistration(t *testing.T, b *Broker, name string, alive, dead time.Duration) (net.Conn, wire.SessionKey) {
	t.Helper()
	key := wire.SessionKey(make([]byte, wire.SessionKeySize))
	gw, agent := net.Pipe()
	t.Cleanup(func() { gw.Close(); agent.Close() })
	reg := &registration{b: b, name: name, key: name, conn: gw, settings: Settings{Alive: alive, Dead: dead}.WithDefaults(),
		sessionKey: key, sealer: wire.NewSealer(key, false), done: make(chan struct{})}
	reg.lastSent.Store(clock())
	reg.lastHeard.Store(clock())
	b.mu.Lock()
	b.regs[name] = reg
	b.mu.Unlock()
	b.alive.add(reg)
	return agent, key
}

// readingRegistration adds a registration called home that is never due
// an ALIVE to a new broker logging to logger, and starts its reader; and
// returns it, the agent's end of its control connection, its session key
// and the agent's sealer.
func readingRegistration(t *testing.T, logger *zap.Logger) (*registration, net.Conn, wire.SessionKey, *wire.Sealer) {
	t.Helper()
	b := newBroker(logger)
	t.Cleanup(func() { b.Destruct() })
	agent, key := aliveRegistration(t, b, "home", time.Hour, 0)
	b.mu.Lock()
	reg := b.regs["home"]
	b.mu.Unlock()
	go reg.run()
	return reg, agent, key, wire.NewSealer(key, true)
}

// countAlives reads ALIVEs from an agent's end for d.
func countAlives(conn net.Conn, key wire.SessionKey, d time.Duration) int {
	opener := wire.NewOpener(key, false)
	_ = conn.SetReadDeadline(time.Now().Add(d))
	n := 0
	for {
		f, err := opener.ReadFrame(conn)
		if err != nil {
			return n
		}
		if f.Type == wire.FrameAlive {
			n++
		}
	}
}

// TestAliveSweep: one sweep sends every registration its ALIVE by the
// time its alive interval passed without a frame, not more often, and a
// connection whose peer stopped reading holds up no other's.
func TestAliveSweep(t *testing.T) {
	b := newBroker(zap.NewNop())
	t.Cleanup(func() { b.Destruct() })                        // after the connections' cleanups: nothing blocks it
	aliveRegistration(t, b, "stuck", 100*time.Millisecond, 0) // nobody reads it
	fast, fastKey := aliveRegistration(t, b, "fast", 100*time.Millisecond, 0)
	slow, slowKey := aliveRegistration(t, b, "slow", 400*time.Millisecond, 0)
	var fastN, slowN atomic.Int64
	done := make(chan struct{})
	go func() { fastN.Store(int64(countAlives(fast, fastKey, 2*time.Second))); done <- struct{}{} }()
	go func() { slowN.Store(int64(countAlives(slow, slowKey, 2*time.Second))); done <- struct{}{} }()
	<-done
	<-done
	b.mu.Lock()
	stuck := b.regs["stuck"]
	b.mu.Unlock()
	// Held up for 2s, it is in flight, or closed if the sweep saw it held
	// up for 5s on a loaded machine.
	if stuck == nil || stuck.aliveSince.Load() == 0 && !stuck.closed() {
		t.Error("the stuck connection's ALIVE is not in flight")
	}
	// One an interval, sent up to a window (25ms) early: about 20-26, and
	// fewer on a loaded machine.
	if n := fastN.Load(); n < 8 || n > 27 {
		t.Errorf("%d ALIVEs in 2s at a 100ms interval, want about 20-26", n)
	}
	if n := slowN.Load(); n < 2 || n > 6 {
		t.Errorf("%d ALIVEs in 2s at a 400ms interval, want about 5", n)
	}
}

// TestAliveTurns: a round sends the ALIVEs that are due within a window,
// and only those; closes the registrations silent for their dead time;
// puts back for later one that sent a frame since its turn was set; and
// sleeps until the next turn, a window at least.
func TestAliveTurns(t *testing.T) {
	// A broker without its sweep's goroutine: the test runs the rounds.
	b := &Broker{logger: zap.NewNop(), regs: map[string]*registration{}, ended: map[string]endedSession{}, alive: newAliveSweep()}
	s := b.alive
	now := clock()
	ago := func(d time.Duration) int64 { return now - int64(d) }
	reg := func(sent, heard int64) *registration {
		gw, agent := net.Pipe()
		t.Cleanup(func() { gw.Close(); agent.Close() })
		key := wire.SessionKey(make([]byte, wire.SessionKeySize))
		r := &registration{b: b, conn: gw, settings: Settings{Alive: 20 * time.Second, Dead: 60 * time.Second},
			sealer: wire.NewSealer(key, false), done: make(chan struct{})}
		r.lastSent.Store(sent)
		r.lastHeard.Store(heard)
		s.add(r)
		return r
	}
	due := reg(ago(19500*time.Millisecond), ago(time.Second))   // due within the window
	early := reg(ago(18500*time.Millisecond), ago(time.Second)) // due in 1.5s: not in this round
	silent := reg(ago(10*time.Second), ago(61*time.Second))
	talked := reg(ago(19*time.Second), ago(time.Second))
	talked.lastSent.Store(ago(5 * time.Second)) // a frame since it was queued

	wait := s.round(now)
	if due.aliveSince.Load() == 0 {
		t.Error("the ALIVE due within the window did not go")
	}
	if early.aliveSince.Load() != 0 || talked.aliveSince.Load() != 0 {
		t.Error("an ALIVE went before its alive interval was within a window of its end")
	}
	if want := time.Second; wait != want {
		t.Errorf("the sweep sleeps %s, want %s: the next turn, 0.5s away, or a window", wait, want)
	}
	select {
	case <-silent.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the registration silent for its dead time was not closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue.turns) != 3 || silent.queued != 0 {
		t.Fatalf("%d registrations queued (the silent one at %d), want 3, not the silent one", len(s.queue.turns), silent.queued)
	}
	turns := map[*registration]time.Duration{}
	for _, turn := range s.queue.turns {
		turns[turn.r] = time.Duration(turn.at - now)
	}
	for r, want := range map[*registration]time.Duration{
		due:    19 * time.Second,       // from this round's ALIVE
		early:  500 * time.Millisecond, // its own turn
		talked: 14 * time.Second,       // from its last frame
	} {
		if got := turns[r]; got != want {
			t.Errorf("next turn in %s, want %s", got, want)
		}
	}
}

// TestAliveSweepWaitsForTheShortestWindow: with registrations of several
// alive intervals, the sweep sleeps no longer than the shortest window of
// those queued, whichever comes first in the queue; a closed registration
// is not queued; and an interval of centuries does not wrap around.
func TestAliveSweepWaitsForTheShortestWindow(t *testing.T) {
	b := &Broker{logger: zap.NewNop(), regs: map[string]*registration{}, ended: map[string]endedSession{}, alive: newAliveSweep()}
	s := b.alive
	now := clock()
	reg := func(alive, dead time.Duration, sent int64) *registration {
		r := &registration{b: b, settings: Settings{Alive: alive, Dead: dead}, done: make(chan struct{})}
		r.lastSent.Store(sent)
		r.lastHeard.Store(now)
		return r
	}
	slow := reg(20*time.Second, time.Minute, now-int64(19*time.Second)+int64(time.Millisecond)) // turn in 1ms, window 1s
	fast := reg(100*time.Millisecond, 300*time.Millisecond, now)                                // ALIVE due in 100ms, window 25ms
	s.add(slow)
	s.add(fast)
	if wait := s.round(now); wait != 25*time.Millisecond {
		t.Errorf("the sweep sleeps %s, want the 25ms window of the shorter interval", wait)
	}
	s.remove(fast)
	if wait := s.round(now); wait != maxAliveWindow {
		t.Errorf("with the short interval gone, the sweep sleeps %s, want the 1s window of the one left", wait)
	}

	closed := reg(time.Second, 3*time.Second, now)
	close(closed.done)
	s.add(closed)
	if closed.queued != 0 {
		t.Error("a closed registration was queued")
	}

	ages := reg(250*365*24*time.Hour, math.MaxInt64, now)
	if turn := ages.turnAfter(now); turn < now {
		t.Errorf("an alive interval of centuries put the turn in the past (%d)", turn)
	}
}

// TestSilentAgentIsClosed: the sweep closes a registration from which
// nothing came for its dead time, though the gateway's ALIVEs go out.
func TestSilentAgentIsClosed(t *testing.T) {
	b := newBroker(zap.NewNop())
	t.Cleanup(func() { b.Destruct() })
	agent, key := aliveRegistration(t, b, "quiet", 50*time.Millisecond, 300*time.Millisecond)
	b.mu.Lock()
	reg := b.regs["quiet"]
	b.mu.Unlock()
	go countAlives(agent, key, 5*time.Second)
	start := time.Now()
	select {
	case <-reg.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a silent agent was not closed")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %s, before its dead time of 300ms", d)
	}
	b.alive.mu.Lock()
	defer b.alive.mu.Unlock()
	if n := len(b.alive.queue.turns); n != 0 {
		t.Errorf("%d registrations left in the sweep's queue", n)
	}
}

// TestAliveWindow: an ALIVE may go a quarter of its interval early,
// within bounds.
func TestAliveWindow(t *testing.T) {
	for alive, want := range map[time.Duration]time.Duration{
		20 * time.Second:       maxAliveWindow,
		2 * time.Second:        500 * time.Millisecond,
		500 * time.Millisecond: 125 * time.Millisecond,
		time.Millisecond:       10 * time.Millisecond,
	} {
		if got := aliveWindowFor(alive); got != want {
			t.Errorf("alive %s: window %s, want %s", alive, got, want)
		}
	}
}

// TestGatewayNeverAnswersAlive: the agent's ALIVEs, a flood of them too,
// draw nothing from the gateway but its own on its schedule, so that the
// agent's answers to the gateway's can never start a loop.
func TestGatewayNeverAnswersAlive(t *testing.T) {
	reg, agent, key, sealer := readingRegistration(t, zap.NewNop())
	go func() {
		for range 50 {
			frame, _ := sealer.Append(nil, wire.Frame{Type: wire.FrameAlive})
			if _, err := agent.Write(frame); err != nil {
				return
			}
		}
	}()
	if n := countAlives(agent, key, 500*time.Millisecond); n != 0 {
		t.Errorf("the gateway answered the agent's ALIVEs with %d", n)
	}
	if heard := time.Duration(clock() - reg.lastHeard.Load()); heard > time.Second {
		t.Errorf("the gateway last heard the agent %s ago: it did not read the ALIVEs", heard)
	}
}

// TestReaderRestarts: a registration's reader goes on in a new goroutine
// once past readerRestart, with the same frame counter: the frames after it
// are read and their tags pass, up to the agent's CLOSE.
func TestReaderRestarts(t *testing.T) {
	restart := readerRestart
	readerRestart = 0
	t.Cleanup(func() { readerRestart = restart })
	core, logs := observer.New(zap.InfoLevel)
	reg, agent, _, sealer := readingRegistration(t, zap.New(core))
	send := func(f wire.Frame) {
		t.Helper()
		frame, _ := sealer.Append(nil, f)
		if _, err := agent.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	send(wire.Frame{Type: wire.FrameAlive})
	readers := func() (run, read int) {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*registration).run(") {
				run++
			} else if strings.Contains(g, "(*registration).read(") {
				read++
			}
		}
		return run, read
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if run, read := readers(); run == 0 && read == 1 {
			break
		}
		if time.Now().After(deadline) {
			run, read := readers()
			t.Fatalf("readers after the first frame: %d started by run, %d restarted; want 0 and 1", run, read)
		}
	}
	send(wire.Frame{Type: wire.FrameAlive})
	send(wire.Frame{Type: wire.FrameClose, Code: wire.CodeShuttingDown, Reason: "stopping"})
	// The registration logs its end last, after it is done.
	for deadline := time.Now().Add(5 * time.Second); logs.FilterMessage("agent registration closed").Len() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the restarted reader did not close the registration on the agent's CLOSE")
		}
	}
	closed := logs.FilterMessage("agent registration closed").All()
	if len(closed) != 1 || !strings.HasPrefix(closed[0].ContextMap()["reason"].(string), "the agent closed") || !reg.closed() {
		t.Errorf("closed: %v, want once, for the agent's CLOSE", closed)
	}
}

// TestStuckAliveIsClosed: the sweep's ALIVEs go without a write deadline,
// and a round closes the registration whose ALIVE is still being written
// frameWriteTimeout after it was sent off, not before, and not one whose
// ALIVE was written; until then the sweep wakes for it.
func TestStuckAliveIsClosed(t *testing.T) {
	b := &Broker{logger: zap.NewNop(), regs: map[string]*registration{}, ended: map[string]endedSession{}, alive: newAliveSweep()}
	s := b.alive
	now := clock()
	reg := func() (*registration, net.Conn) {
		gw, agent := net.Pipe()
		t.Cleanup(func() { gw.Close(); agent.Close() })
		key := wire.SessionKey(make([]byte, wire.SessionKeySize))
		r := &registration{b: b, conn: newDeadlines(gw), settings: Settings{Alive: 20 * time.Second, Dead: time.Hour},
			sealer: wire.NewSealer(key, false), done: make(chan struct{})}
		r.lastSent.Store(now - int64(20*time.Second))
		r.lastHeard.Store(now)
		s.add(r)
		return r, agent
	}
	stuck, _ := reg() // nobody reads its end
	reading, agent := reg()
	go func() { _, _ = io.Copy(io.Discard, agent) }()

	// The queue's next turns are 19s away: the sweep wakes to watch the
	// ALIVEs sent off.
	if wait := s.round(now); wait != frameWriteTimeout {
		t.Errorf("the sweep sleeps %s after sending, want %s", wait, frameWriteTimeout)
	}
	for deadline := time.Now().Add(5 * time.Second); reading.aliveSince.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the ALIVE to a reading agent was not written")
		}
		time.Sleep(time.Millisecond)
	}
	if stuck.aliveSince.Load() != now {
		t.Fatal("the ALIVE to an agent that reads nothing is not in flight")
	}
	<-stuck.conn.(*deadlines).writing // its write has begun, and blocks
	for _, r := range []*registration{stuck, reading} {
		if set := r.conn.(*deadlines).set.Load(); set != 0 {
			t.Errorf("the sweep's ALIVE set %d write deadlines", set)
		}
	}

	if wait := s.round(now + int64(frameWriteTimeout-time.Second)); wait != time.Second {
		t.Errorf("with an ALIVE in flight for 4s, the sweep sleeps %s, want 1s", wait)
	}
	if stuck.closed() {
		t.Fatal("closed before its ALIVE was held up for frameWriteTimeout")
	}
	s.round(now + int64(frameWriteTimeout))
	select {
	case <-stuck.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the registration whose ALIVE was held up for frameWriteTimeout was not closed")
	}
	if reading.closed() {
		t.Error("the registration whose ALIVE was written was closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.inFlight); n != 0 {
		t.Errorf("%d ALIVEs still watched", n)
	}
}

// TestFramesOnDemandHaveADeadline: a frame sent on demand is written
// within frameWriteTimeout, and the deadline is cleared afterwards so that
// the sweep's next ALIVE does not find it passed.
func TestFramesOnDemandHaveADeadline(t *testing.T) {
	gw, agent := net.Pipe()
	t.Cleanup(func() { gw.Close(); agent.Close() })
	go func() { _, _ = io.Copy(io.Discard, agent) }()
	conn := newDeadlines(gw)
	key := wire.SessionKey(make([]byte, wire.SessionKeySize))
	r := &registration{conn: conn, sealer: wire.NewSealer(key, false)}
	before := time.Now()
	if err := r.send(wire.Frame{Type: wire.FrameOpen, Ticket: make([]byte, wire.TicketSize), Kind: wire.KindMux}); err != nil {
		t.Fatal(err)
	}
	if set := conn.set.Load(); set != 2 {
		t.Fatalf("%d write deadlines set, want 2: one for the write, one to clear it", set)
	}
	if first := time.Unix(0, conn.first.Load()); first.Before(before.Add(frameWriteTimeout)) || first.After(time.Now().Add(frameWriteTimeout)) {
		t.Errorf("the write's deadline was %s after it began, want %s", first.Sub(before), frameWriteTimeout)
	}
	if conn.last.Load() != 0 {
		t.Error("the write deadline was left set")
	}
}

// deadlines records the write deadlines set on a connection, and closes
// writing when its first write begins.
type deadlines struct {
	net.Conn
	set         atomic.Int64
	first, last atomic.Int64 // Unix nanoseconds, 0 for none
	writing     chan struct{}
	began       sync.Once
}

func newDeadlines(conn net.Conn) *deadlines {
	return &deadlines{Conn: conn, writing: make(chan struct{})}
}

func (d *deadlines) Write(p []byte) (int, error) {
	d.began.Do(func() { close(d.writing) })
	return d.Conn.Write(p)
}

func (d *deadlines) SetWriteDeadline(t time.Time) error {
	var at int64
	if !t.IsZero() {
		at = t.UnixNano()
	}
	if d.set.Add(1) == 1 {
		d.first.Store(at)
	}
	d.last.Store(at)
	return d.Conn.SetWriteDeadline(t)
}

// TestStopWithAlivesHeldUp: agents that read nothing, each with an ALIVE
// held up in its write (which has no deadline), hold the broker's stop up
// for frameWriteTimeout in all: the CLOSE it sends each waits no longer.
func TestStopWithAlivesHeldUp(t *testing.T) {
	t.Parallel()
	b := newBroker(zap.NewNop())
	var regs []*registration
	for _, name := range []string{"a", "b", "c"} {
		aliveRegistration(t, b, name, 10*time.Millisecond, time.Hour) // nobody reads its end
		b.mu.Lock()
		regs = append(regs, b.regs[name])
		b.mu.Unlock()
	}
	for _, r := range regs {
		for deadline := time.Now().Add(5 * time.Second); r.aliveSince.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("no ALIVE went to an agent that reads nothing")
			}
			time.Sleep(time.Millisecond)
		}
	}
	start := time.Now()
	b.Destruct()
	if d := time.Since(start); d > frameWriteTimeout+3*time.Second {
		t.Errorf("the stop took %s with three ALIVEs held up, want about %s", d, frameWriteTimeout)
	}
	for _, r := range regs {
		if !r.closed() {
			t.Errorf("%s not closed by the stop", r.name)
		}
	}
}
