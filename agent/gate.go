package agent

import (
	"context"
	"sync"
)

// handshakesPerGateway bounds the control handshakes an agent runs at once
// with one gateway address, below the gateway's own limit per source
// address (8): an agent with a thousand entries registers them one small
// group at a time, as fast as the gateway answers, instead of being
// throttled into its backoff.
const handshakesPerGateway = 4

// handshakeGate paces an agent's control handshakes per gateway address.
type handshakeGate struct {
	mu    sync.Mutex
	slots map[string]chan struct{} // by gateway address
}

func newHandshakeGate() *handshakeGate {
	return &handshakeGate{slots: make(map[string]chan struct{})}
}

// enter waits for a handshake slot at target, until ctx ends; leave gives
// it back.
func (g *handshakeGate) enter(ctx context.Context, target string) (leave func(), err error) {
	g.mu.Lock()
	slots := g.slots[target]
	if slots == nil {
		slots = make(chan struct{}, handshakesPerGateway)
		g.slots[target] = slots
	}
	g.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
