package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"go.uber.org/zap"
)

// Reasons given to a gateway when the agent closes the registration of an
// entry at one of its addresses.
const (
	reasonLeftDNS = "the address left the gateway's DNS"
	reasonByName  = "the gateway's host resolves again: connecting to each of its addresses"
)

// gateways keeps one entry registered with every address of its gateway:
// it follows the DNS of the gateway's host and runs a runner per address.
// The runners share nothing but the entry, the counters and the gateway
// instances they registered on: each has its own session, resumption and
// backoff.
type gateways struct {
	e     balancebin.BackEntry
	opts  Options
	tls   *tls.Config
	files *fileBudget
	res   *resolver
	gate  *handshakeGate
	log   *zap.Logger
	count *counters
	// proxied is set when the entry reaches its gateway through HTTP
	// proxies, which may resolve a host that the agent cannot.
	proxied bool
	started time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	runners map[string]*runner // by target
	watch   *hostWatch         // nil for an IP address
	// byName is set while the agent connects by name, through the
	// proxies, because it cannot resolve the host itself.
	byName       bool
	resolveErr   string // the last lookup's failure, or empty
	resolveErrAt time.Time
	nextResolve  time.Time
	resolved     chan struct{}     // closed after the next lookup
	holders      map[string]string // gateway instance: the target registered on it, or registering
}

// newGateways returns the gateways of e, which stop when parent ends; run
// serves them.
func newGateways(parent context.Context, e balancebin.BackEntry, opts Options, tlsConf *tls.Config,
	files *fileBudget, res *resolver, gate *handshakeGate) *gateways {
	ctx, cancel := context.WithCancelCause(parent)
	chain, err := proxyChain(e)
	return &gateways{
		e: e, opts: opts, tls: tlsConf, files: files, res: res, gate: gate,
		log:      opts.Logger.With(zap.String("name", e.Name)),
		count:    &counters{},
		proxied:  err == nil && len(chain) > 0,
		started:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		runners:  make(map[string]*runner),
		resolved: make(chan struct{}),
		holders:  make(map[string]string),
	}
}

// stop ends every runner of the entry, telling each gateway why, without
// waiting; done closes when they have.
func (g *gateways) stop(reason string) { g.cancel(stopCause(reason)) }

// run resolves the gateway's host and keeps a runner per address until
// the entry stops. When after is not nil, it first waits for after to
// close: that is the entry before it changed.
func (g *gateways) run(after <-chan struct{}) {
	defer close(g.done)
	defer g.wg.Wait()
	if after != nil {
		select {
		case <-after:
		case <-g.ctx.Done():
			return
		}
	}
	if ip, err := netip.ParseAddr(g.e.Gateway.Host); err == nil {
		g.apply(&resolution{addrs: []netip.Addr{ip}, at: time.Now()})
		<-g.ctx.Done()
		return
	}
	w := g.res.watch(g.e.Gateway.Host)
	defer w.release()
	g.mu.Lock()
	g.watch = w
	g.mu.Unlock()
	for {
		res, changed := w.current()
		if res != nil {
			g.apply(res)
		}
		select {
		case <-g.ctx.Done():
			return
		case <-changed:
		}
	}
}

// apply starts and stops runners so that one serves each address of res;
// a failed lookup keeps the runners.
func (g *gateways) apply(res *resolution) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx.Err() != nil {
		return
	}
	close(g.resolved)
	g.resolved = make(chan struct{})
	g.nextResolve = res.next
	if res.err != nil {
		g.resolveErr, g.resolveErrAt = res.err.Error(), res.at
		if len(g.runners) == 0 && g.proxied {
			g.byName = true
			g.log.Warn(fmt.Sprintf("%v; connecting by name through the proxy, which may resolve it: "+
				"one connection, to whichever gateway the proxy reaches, rather than one per gateway address", res.err))
			g.startRunner(g.e.Gateway.String())
		}
		return
	}
	g.resolveErr = ""
	want := make(map[string]bool, len(res.addrs))
	var targets []string
	for _, a := range res.addrs {
		t := netip.AddrPortFrom(a, g.e.Gateway.Port).String()
		want[t] = true
		targets = append(targets, t)
	}
	if g.byName {
		g.byName = false
		g.runners[g.e.Gateway.String()].stop(reasonByName)
		delete(g.runners, g.e.Gateway.String())
		g.log.Info("the gateway's host resolves again; connecting to each of its addresses",
			zap.String("addresses", strings.Join(targets, " ")))
	}
	first := len(g.runners) == 0
	for t, r := range g.runners {
		if !want[t] {
			g.log.Info("a gateway address left the DNS; closing its registration", zap.String("address", t))
			r.stop(reasonLeftDNS)
			delete(g.runners, t)
		}
	}
	for _, t := range targets {
		if g.runners[t] != nil {
			continue
		}
		if !first {
			g.log.Info("a gateway address joined the DNS; registering there too", zap.String("address", t))
		}
		g.startRunner(t)
	}
	if first && len(targets) > 1 {
		g.log.Info(fmt.Sprintf("the gateway %s has %d addresses; registering with each", g.e.Gateway, len(targets)),
			zap.String("addresses", strings.Join(targets, " ")))
	}
}

// startRunner starts the runner of target. g.mu is held.
func (g *gateways) startRunner(target string) {
	r := newRunner(g, target)
	g.runners[target] = r
	g.wg.Go(r.run)
}

// claim records that the runner at target registers on the gateway
// instance; it returns the target of another runner of the entry that
// holds, or is making, a registration there, and then records nothing. An
// empty instance (a gateway that does not say) claims nothing.
func (g *gateways) claim(instance, target string) (holder string) {
	if instance == "" {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if h, ok := g.holders[instance]; ok && h != target {
		return h
	}
	g.holders[instance] = target
	return ""
}

// unclaim ends what claim recorded.
func (g *gateways) unclaim(instance, target string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if instance != "" && g.holders[instance] == target {
		delete(g.holders, instance)
	}
}

// holder returns the target of another runner registered on the gateway
// instance, or "".
func (g *gateways) holder(instance, target string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if h := g.holders[instance]; instance != "" && h != target {
		return h
	}
	return ""
}

// nextResolution returns a channel closed after the next lookup of the
// gateway's host.
func (g *gateways) nextResolution() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resolved
}

// lost tells that a runner lost its registration: the host is looked up
// again soon, in case its addresses changed.
func (g *gateways) lost() {
	g.mu.Lock()
	w := g.watch
	g.mu.Unlock()
	if w != nil {
		w.refresh()
	}
}

// fill copies the state of the entry's runners into s: the entry is
// registered when one of them is.
func (g *gateways) fill(s *EntryStatus) {
	g.mu.Lock()
	runners := make([]*runner, 0, len(g.runners))
	for _, r := range g.runners {
		runners = append(runners, r)
	}
	s.ByName, s.ResolveError, s.ResolveErrorAt = g.byName, g.resolveErr, g.resolveErrAt
	next := g.nextResolve
	g.mu.Unlock()
	slices.SortFunc(runners, func(a, b *runner) int { return strings.Compare(a.target, b.target) })
	best := -1
	for i, r := range runners {
		gs := r.track.status(r.target)
		s.Gateways = append(s.Gateways, gs)
		if best < 0 || better(gs, s.Gateways[best]) {
			best = i
		}
	}
	// After the states: a registration is counted before its state says
	// registered.
	g.count.fill(s)
	for _, gs := range s.Gateways {
		if gs.LastErrorAt.After(s.LastErrorAt) {
			s.LastError, s.LastErrorAt = gs.LastError, gs.LastErrorAt
		}
		if gs.RegisteredSince.After(s.RegisteredSince) {
			s.RegisteredSince = gs.RegisteredSince
		}
	}
	if s.ResolveError != "" && !s.ResolveErrorAt.Before(s.LastErrorAt) {
		s.LastError, s.LastErrorAt = s.ResolveError, s.ResolveErrorAt
	}
	switch {
	case best >= 0:
		b := s.Gateways[best]
		s.State, s.Since, s.RetryAt = b.State, b.Since, b.RetryAt
		if s.State == StateDuplicate {
			s.State = StateWaiting
		}
		if b.Refusal != nil {
			ref := *b.Refusal
			s.Refusal = &ref
		}
	case s.ResolveError != "":
		s.State, s.Since, s.RetryAt = StateWaiting, s.ResolveErrorAt, next
	default:
		s.State, s.Since = StateConnecting, g.started
	}
}

// rank orders the states of an entry's addresses: the entry takes the
// state of its best address.
var rank = map[State]int{StateRegistered: 0, StateConnecting: 1, StateWaiting: 2, StateRefused: 3, StateDuplicate: 4, StateStopped: 5}

// better reports whether a stands for the entry before b: a better state,
// or in the same state, the longer registered or the sooner retried.
func better(a, b GatewayStatus) bool {
	if rank[a.State] != rank[b.State] {
		return rank[a.State] < rank[b.State]
	}
	if a.State == StateRegistered {
		return a.Since.Before(b.Since)
	}
	return !a.RetryAt.IsZero() && (b.RetryAt.IsZero() || a.RetryAt.Before(b.RetryAt))
}
