package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/tildegate/tildegate/modules/broker"
	"github.com/tildegate/tildegate/wire"
)

// unknownNameError reports a native RDP connection for a name that no
// tildegate handler of the running config defines.
type unknownNameError struct{ name string }

func (e *unknownNameError) Error() string { return fmt.Sprintf("no server named %q", e.name) }

// rdpKeepAlive is the TCP keep-alive period towards RDP servers, which
// finds a vanished server during a long, quiet session.
const rdpKeepAlive = 30 * time.Second

// errNoRDPTarget reports a name whose only entry has no address to send
// RDP to (dynamic upstreams, for one).
var errNoRDPTarget = errors.New("the name has no RDP target: add an RDPPORT line or an rdp option")

// liveHandlers are the provisioned handlers, oldest first. Native RDP
// arrives below HTTP, with no host name to choose a site by, so it looks a
// name up in every handler, the newest config first.
var liveHandlers struct {
	sync.Mutex
	list []*Handler
}

// registerRDP makes h's names reachable by native RDP.
func registerRDP(h *Handler) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	liveHandlers.list = append(liveHandlers.list, h)
}

// unregisterRDP undoes registerRDP.
func unregisterRDP(h *Handler) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	liveHandlers.list = slices.DeleteFunc(liveHandlers.list, func(x *Handler) bool { return x == h })
}

// rdpPlan is where native RDP for one name goes.
type rdpPlan struct {
	name    string   // as configured
	targets []string // direct addresses; empty for an agent
	agent   bool
	broker  *broker.Broker
}

// lookupRDP finds the plan for name in the newest handler that defines it.
func lookupRDP(name string) (rdpPlan, bool) {
	var p rdpPlan
	found := withNewestRoute(name, func(h *Handler, rt *route) { p = rt.rdpPlan(h.broker) })
	return p, found
}

// rdpPlan applies the TSplus rule: the RDPPORT targets when the name has
// any, else its agent, else the host and port of its web servers.
func (rt *route) rdpPlan(b *broker.Broker) rdpPlan {
	p := rdpPlan{name: rt.name, broker: b}
	switch {
	case len(rt.rdpTargets) > 0:
		for _, hp := range rt.rdpTargets {
			p.targets = append(p.targets, hp.String())
		}
	case rt.back != nil:
		p.agent = true
	default:
		p.targets = append(p.targets, rt.upstreamDials...)
	}
	return p
}

// DialRDP connects a native RDP client, whose IP address is clientIP, to
// the server named name: directly to the name's RDP target, or through a back
// connection to its agent. It returns the connection and where it leads,
// for logs. ctx bounds the dial; a name whose agent is away is a
// *broker.NoAgentError.
//
// A name with several targets keeps each client address on one of them,
// so that a reconnecting client finds its session, and fails over to the
// next one that answers: each try has an equal share of the time left.
func DialRDP(ctx context.Context, name, clientIP string) (net.Conn, string, error) {
	p, ok := lookupRDP(name)
	if !ok {
		return nil, "", &unknownNameError{name: name}
	}
	if p.agent {
		conn, err := p.broker.Dial(ctx, p.name, wire.KindRDP)
		return conn, "agent " + p.name, err
	}
	if len(p.targets) == 0 {
		return nil, "", fmt.Errorf("%s: %w", p.name, errNoRDPTarget)
	}
	var errs []error
	order := stickyOrder(p.targets, clientIP)
	for i, target := range order {
		d := net.Dialer{KeepAlive: rdpKeepAlive}
		if deadline, ok := ctx.Deadline(); ok {
			d.Timeout = time.Until(deadline) / time.Duration(len(order)-i)
		}
		conn, err := d.DialContext(ctx, "tcp", target)
		if err == nil {
			return conn, target, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("%s: no RDP target answers: %w", p.name, errors.Join(errs...))
}

// stickyOrder returns targets rotated to start at the one that clientIP
// hashes to.
func stickyOrder(targets []string, clientIP string) []string {
	if len(targets) < 2 {
		return targets
	}
	h := fnv.New32a()
	h.Write([]byte(clientIP))
	start := int(h.Sum32() % uint32(len(targets)))
	return append(slices.Clone(targets[start:]), targets[:start]...)
}
