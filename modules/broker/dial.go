package broker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// NoAgentError reports a request for a name that no agent holds.
type NoAgentError struct{ Name string }

// Error implements error.
func (e *NoAgentError) Error() string { return "no agent connected for " + e.Name }

// waitTimeoutError reports a back connection that did not come in time. It
// is a net.Error timeout, which Caddy's reverse proxy answers with 504.
type waitTimeoutError struct {
	name string
	wait time.Duration
}

func (e *waitTimeoutError) Error() string {
	return fmt.Sprintf("no back connection from the agent for %s within %s", e.name, e.wait)
}
func (e *waitTimeoutError) Timeout() bool   { return true }
func (e *waitTimeoutError) Temporary() bool { return true }

// Dial returns a back connection to the agent that holds name: a spare one
// at once when there is one, otherwise a new one asked for with a ticket.
func (b *Broker) Dial(ctx context.Context, name string, kind wire.Kind) (net.Conn, error) {
	b.mu.Lock()
	reg := b.regs[strings.ToLower(name)]
	b.mu.Unlock()
	if reg == nil {
		return nil, &NoAgentError{Name: name}
	}
	if kind == wire.KindHTTP {
		select {
		case c := <-reg.idle:
			go reg.openSpare()
			return c, nil
		default:
		}
	}
	ch := make(chan net.Conn, 1)
	waitCtx, cancel := context.WithTimeout(ctx, reg.settings.BackWait)
	defer cancel()
	timedOut := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &waitTimeoutError{name: name, wait: reg.settings.BackWait}
	}
	if err := b.open(waitCtx, reg, kind, ch); err != nil {
		if waitCtx.Err() != nil {
			return nil, timedOut()
		}
		return nil, fmt.Errorf("asking the agent for %s for a back connection: %w", name, err)
	}
	select {
	case c := <-ch:
		return c, nil
	case <-waitCtx.Done():
		b.abandon(reg, kind, ch)
		return nil, timedOut()
	case <-reg.done:
		b.abandon(reg, kind, ch)
		return nil, fmt.Errorf("the agent for %s disconnected", name)
	}
}
