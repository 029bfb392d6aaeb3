package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"sync"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"go.uber.org/zap"
)

// Reasons given to the gateway when the agent closes a registration.
const (
	reasonRemoved = "the entry left backbalance.bin"
	reasonChanged = "the entry changed in backbalance.bin"
)

// Agent keeps the entries of backbalance.bin registered with their
// gateways and serves the back connections the gateways ask for. A gateway
// whose host resolves to several addresses gets a registration of each
// entry at each address, one per gateway instance.
type Agent struct {
	opts  Options
	log   *zap.Logger
	files *fileBudget
	res   *resolver      // shared by the entries, one lookup per host
	gate  *handshakeGate // paces the entries' handshakes per gateway address

	mu       sync.Mutex
	listed   []balancebin.BackEntry // entries of the last Apply, for Status
	checks   []error                // why each of listed cannot be served, or nil
	want     []balancebin.BackEntry // entries to serve, checked
	runners  map[string]*gateways   // by entry key, while running
	ctx      context.Context        // Run's context; nil before Run
	tls      *tls.Config
	finished bool // Run returned or is returning
	wg       sync.WaitGroup
}

// New returns an agent that serves no entry until Apply and Run are
// called.
func New(opts Options) *Agent {
	opts = opts.withDefaults()
	return &Agent{opts: opts, log: opts.Logger, files: newFileBudget(opts.OpenFiles), gate: newHandshakeGate(),
		res: newResolver(opts.Lookup, opts.ResolveInterval, opts.Logger), runners: make(map[string]*gateways)}
}

// Run serves the entries of the last Apply, and those of later ones, until
// ctx ends; it then closes every registration (CLOSE{shutting-down}) and
// back connection and returns nil. It fails at once when Options.CAFile
// cannot be read or when Run was called before.
func (a *Agent) Run(ctx context.Context) error {
	tlsConf, err := tlsConfig(a.opts)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.ctx != nil {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.ctx, a.tls = ctx, tlsConf
	a.sync()
	a.mu.Unlock()

	<-ctx.Done()
	a.mu.Lock()
	a.finished = true
	for key, r := range a.runners {
		r.stop("the agent is stopping")
		delete(a.runners, key)
	}
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

// Apply sets the entries to serve. While Run runs, names that are new
// register, names no longer listed close, and names whose settings changed
// (any field but the position in the file) close and register again; the
// others keep running untouched. Entries that the agent cannot serve (see
// CheckEntries) are logged and left out. Apply may be called at any time,
// from any goroutine.
func (a *Agent) Apply(entries []balancebin.BackEntry) {
	var ok []balancebin.BackEntry
	checks := CheckEntries(entries)
	for i, err := range checks {
		if err != nil {
			a.log.Error("entry refused: " + err.Error())
			continue
		}
		ok = append(ok, entries[i])
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want = ok
	a.listed, a.checks = slices.Clone(entries), checks
	if a.ctx != nil && !a.finished {
		a.sync()
	}
}

// sync starts and stops runners so that they serve a.want. a.mu is held.
func (a *Agent) sync() {
	running := make(map[string]balancebin.BackEntry, len(a.runners))
	for key, r := range a.runners {
		running[key] = r.e
	}
	p := diff(running, a.want)
	for _, key := range p.stop {
		a.log.Info("entry removed; closing its registration", zap.String("name", a.runners[key].e.Name))
		a.runners[key].stop(reasonRemoved)
		delete(a.runners, key)
	}
	for _, e := range p.restart {
		a.log.Info("entry changed; registering again", zap.String("name", e.Name))
		old := a.runners[e.Key()]
		old.stop(reasonChanged)
		a.runners[e.Key()] = a.start(e, old.done)
	}
	for _, e := range p.start {
		a.runners[e.Key()] = a.start(e, nil)
	}
}

// start starts serving e once after, if not nil, is closed. a.mu is
// held.
func (a *Agent) start(e balancebin.BackEntry, after <-chan struct{}) *gateways {
	g := newGateways(a.ctx, e, a.opts, a.tls, a.files, a.res, a.gate)
	a.wg.Go(func() { g.run(after) })
	return g
}
