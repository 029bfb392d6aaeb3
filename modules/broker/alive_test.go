package broker

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// aliveRegistration adds a registration called name with the given alive
// interval to b, and returns the agent's end of its control connection.
func aliveRegistration(t *testing.T, b *Broker, name string, alive time.Duration) (net.Conn, wire.SessionKey) {
	t.Helper()
	key := wire.SessionKey(make([]byte, wire.SessionKeySize))
	gw, agent := net.Pipe()
	t.Cleanup(func() { gw.Close(); agent.Close() })
	reg := &registration{b: b, name: name, key: name, conn: gw, settings: Settings{Alive: alive}.WithDefaults(),
		sessionKey: key, sealer: wire.NewSealer(key, false), done: make(chan struct{})}
	reg.lastSent.Store(time.Now().UnixNano())
	b.mu.Lock()
	b.regs[name] = reg
	b.mu.Unlock()
	b.keepAliveEvery(alive)
	return agent, key
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
// connection whose peer stopped reading holds up no other's; its round
// follows the shortest alive interval registered.
func TestAliveSweep(t *testing.T) {
	b := newBroker(zap.NewNop())
	t.Cleanup(func() { b.Destruct() })                     // after the connections' cleanups: nothing blocks it
	aliveRegistration(t, b, "stuck", 100*time.Millisecond) // nobody reads it
	fast, fastKey := aliveRegistration(t, b, "fast", 100*time.Millisecond)
	slow, slowKey := aliveRegistration(t, b, "slow", 400*time.Millisecond)
	if got, want := time.Duration(b.aliveTick.Load()), aliveTickFor(100*time.Millisecond); got != want {
		t.Errorf("the sweep's round is %s, want %s for the shortest alive interval", got, want)
	}
	var fastN, slowN atomic.Int64
	done := make(chan struct{})
	go func() { fastN.Store(int64(countAlives(fast, fastKey, 2*time.Second))); done <- struct{}{} }()
	go func() { slowN.Store(int64(countAlives(slow, slowKey, 2*time.Second))); done <- struct{}{} }()
	<-done
	<-done
	b.mu.Lock()
	stuck := b.regs["stuck"]
	b.mu.Unlock()
	if stuck == nil || !stuck.aliveSending.Load() {
		t.Error("the stuck connection's ALIVE is not in flight")
	}
	// One an interval, sent up to a round (25ms) early: about 20-26, and
	// fewer on a loaded machine.
	if n := fastN.Load(); n < 8 || n > 27 {
		t.Errorf("%d ALIVEs in 2s at a 100ms interval, want about 20-26", n)
	}
	if n := slowN.Load(); n < 2 || n > 6 {
		t.Errorf("%d ALIVEs in 2s at a 400ms interval, want about 5", n)
	}
	// The round follows the registrations there are now.
	b.mu.Lock()
	delete(b.regs, "fast")
	delete(b.regs, "stuck")
	b.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if got, want := time.Duration(b.aliveTick.Load()), aliveTickFor(400*time.Millisecond); got != want {
		t.Errorf("with the 100ms registrations gone, the round is %s, want %s", got, want)
	}
}

// TestAliveTick: the sweep's round is a quarter of the alive interval,
// within bounds.
func TestAliveTick(t *testing.T) {
	for alive, want := range map[time.Duration]time.Duration{
		20 * time.Second:       maxAliveTick,
		2 * time.Second:        500 * time.Millisecond,
		500 * time.Millisecond: 125 * time.Millisecond,
		time.Millisecond:       10 * time.Millisecond,
	} {
		if got := aliveTickFor(alive); got != want {
			t.Errorf("alive %s: round %s, want %s", alive, got, want)
		}
	}
}

// TestGatewayNeverAnswersAlive: the agent's ALIVEs, a flood of them too,
// draw nothing from the gateway but its own on its schedule, so that the
// agent's answers to the gateway's can never start a loop.
func TestGatewayNeverAnswersAlive(t *testing.T) {
	b := newBroker(zap.NewNop())
	t.Cleanup(func() { b.Destruct() })
	agent, key := aliveRegistration(t, b, "home", time.Hour)
	b.mu.Lock()
	reg := b.regs["home"]
	b.mu.Unlock()
	go reg.run()
	sealer := wire.NewSealer(key, true)
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
	if heard := time.Since(time.Unix(0, reg.lastHeard.Load())); heard > time.Second {
		t.Errorf("the gateway last heard the agent %s ago: it did not read the ALIVEs", heard)
	}
}
