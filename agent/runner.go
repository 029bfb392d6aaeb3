package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tildegate/tildegate/agent/proxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/logburst"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// runner keeps one entry registered with one address of its gateway.
type runner struct {
	e balancebin.BackEntry
	// target is the address the runner dials, control and back
	// connections alike: an address of the gateway, "ip:port", or its
	// "host:port" when the agent connects by name.
	target string
	g      *gateways // the entry's runners
	opts   Options
	tls    *tls.Config
	log    *zap.Logger

	warnUnbound sync.Once
	localDown   logburst.Burst // logs of the local service refusing
	tooMany     logburst.Burst // logs of sessions refused for the open-file limit
	files       *fileBudget    // the agent's, shared by its runners
	track       *tracker       // what Status reports
	// instance is the gateway instance of the last challenge, for telling
	// a name-taken refusal that another runner of the entry causes.
	instance string
	// lastDuplicate is the last duplicate instance the runner logged.
	lastDuplicate duplicateError

	ctx    context.Context
	cancel context.CancelCauseFunc
	backs  sync.WaitGroup
}

// localDownLogInterval is the least time between two logs of the local
// service refusing connections, and of sessions refused for the agent's
// open-file limit.
const localDownLogInterval = 30 * time.Second

// wrongGatewayRetry is the least wait after a handshake that ended without
// the gateway's key confirmation.
const wrongGatewayRetry = 5 * time.Minute

// stopCause is why a runner was stopped, which its CLOSE frame says.
type stopCause string

// Error implements error.
func (s stopCause) Error() string { return string(s) }

// stopReason returns why ctx ended, in words for a CLOSE frame and a log.
func stopReason(ctx context.Context) string {
	var s stopCause
	if errors.As(context.Cause(ctx), &s) {
		return string(s)
	}
	return "the agent is stopping"
}

// newRunner returns a runner of g's entry at target that stops when g
// does; run serves it.
func newRunner(g *gateways, target string) *runner {
	ctx, cancel := context.WithCancelCause(g.ctx)
	return &runner{
		e:      g.e,
		target: target,
		g:      g,
		opts:   g.opts,
		tls:    g.tls,
		files:  g.files,
		log:    g.log.With(zap.String("address", target)),
		ctx:    ctx,
		cancel: cancel,
		track:  newTracker(g.count),
	}
}

// stop ends the runner, telling the gateway why, without waiting.
func (r *runner) stop(reason string) { r.cancel(stopCause(reason)) }

// run registers, serves, and registers again after each drop or refusal,
// until the runner stops.
func (r *runner) run() {
	ctx := r.ctx
	defer r.backs.Wait()
	defer r.track.stopped()
	pace := &pacing{bo: newBackoff(r.opts.MinBackoff, r.opts.MaxBackoff)}
	var (
		resume *session // the session to ask back after a drop
		delay  time.Duration
	)
	for {
		if !sleep(ctx, delay) {
			return
		}
		r.track.connecting()
		c, err := r.register(ctx, resume)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var dup *duplicateError
			if errors.As(err, &dup) || errors.As(r.sameInstance(err), &dup) {
				if !r.idle(ctx, dup) {
					return
				}
				delay = 0
				continue
			}
			var permanent bool
			delay, permanent = r.failed(err, pace)
			r.track.failed(err, delay)
			if permanent {
				resume = nil
			}
			continue
		}
		pace.registered()
		r.lastDuplicate = duplicateError{}
		r.track.registered(resume != nil, c.instance)
		r.log.Info("registered", zap.String("gateway", r.e.Gateway.String()), zap.String("instance", c.instance),
			zap.Bool("tls", r.e.UseTLS()), zap.Bool("resumed", resume != nil))
		started := time.Now()
		r.files.hold()
		err = r.serve(ctx, c)
		r.files.release()
		r.g.unclaim(c.instance, r.target)
		if ctx.Err() != nil {
			return
		}
		r.g.lost()
		pace.ended(time.Since(started))
		var ref *wire.Refusal
		if errors.As(err, &ref) {
			resume = nil
			delay = r.closed(ref, pace)
			r.track.wait("closed by the gateway: "+describe(ref), ref, delay)
			continue
		}
		resume = c.sess
		delay = pace.afterDrop()
		r.track.wait("control connection lost: "+err.Error(), nil, delay)
		r.log.Warn(fmt.Sprintf("control connection lost: %v; resuming the session in %s", err, round(delay)))
	}
}

// duplicateError is a registration given up because another runner of the
// entry holds one on the same gateway instance.
type duplicateError struct {
	instance, holder string
}

// Error implements error.
func (d *duplicateError) Error() string {
	return fmt.Sprintf("the gateway instance %s holds the registration through %s", d.instance, d.holder)
}

// sameInstance returns a *duplicateError for a name-taken refusal while
// another runner of the entry is registered on the instance this address
// led to last time: the gateway refuses the name that this agent already
// holds there. Otherwise it returns err.
func (r *runner) sameInstance(err error) error {
	var ref *wire.Refusal
	if !errors.As(err, &ref) || ref.Code != wire.CodeNameTaken || r.instance == "" {
		return err
	}
	if h := r.g.holder(r.instance, r.target); h != "" {
		return &duplicateError{instance: r.instance, holder: h}
	}
	return err
}

// idle leaves the address alone until the next lookup of the gateway's
// host, after dup; it reports whether the runner still runs.
func (r *runner) idle(ctx context.Context, dup *duplicateError) bool {
	next := r.g.nextResolution()
	// Said once while it lasts: the address tries again at every lookup.
	level := zap.WarnLevel
	if r.lastDuplicate == *dup {
		level = zap.DebugLevel
	}
	r.lastDuplicate = *dup
	r.log.Log(level, fmt.Sprintf("both %s and %s reach the gateway instance %s, which holds one registration per name: "+
		"keeping the one through %s; trying %s again at the next resolution of %s",
		dup.holder, r.target, dup.instance, dup.holder, r.target, r.e.Gateway.Host),
		zap.String("instance", dup.instance))
	r.track.duplicate(dup)
	select {
	case <-ctx.Done():
		return false
	case <-next:
		return true
	}
}

// failed logs a failed registration and returns the delay before the next
// attempt, and whether the failure is permanent for the gateway, which
// makes the session being resumed worthless. A wrong proxy login is retried
// as slowly but keeps the session.
func (r *runner) failed(err error, pace *pacing) (time.Duration, bool) {
	var (
		ref *wire.Refusal
		hop *proxy.HopError
	)
	switch {
	case errors.Is(err, wire.ErrNoConfirmation):
		// Each such attempt gives whoever answered one online guess at
		// the password: give few. A corrected password in the file
		// restarts the runner at once.
		// The session stays worth resuming: its proof is bound to each
		// run and is of no use to whoever answered.
		d := max(r.opts.SlowRetry, wrongGatewayRetry)
		if errors.As(err, &ref) {
			d = max(d, ref.RetryAfter)
		}
		r.log.Error(fmt.Sprintf("registration failed at the gateway %s: %v; retrying in %s", r.e.Gateway, err, round(d)))
		return d, false
	case errors.As(err, &ref) && ref.Code == wire.CodeBusy:
		// The gateway spreads the agents it turns away over the time it
		// needs to take them all: come back when it says, however long,
		// a little later so as not to arrive with those told the same
		// second. The backoff does not grow: the gateway is not failing.
		d := max(ref.RetryAfter, r.opts.MinBackoff) + time.Duration(rand.Float64()*float64(time.Second))
		r.log.Info(fmt.Sprintf("registration deferred: %s; retrying in %s, as the gateway asked", describe(ref), round(d)),
			zap.Stringer("code", ref.Code))
		return d, false
	case errors.As(err, &ref) && ref.RetryAfter > 0:
		// The gateway said when: even beyond the usual backoff.
		d := max(ref.RetryAfter, pace.next())
		r.log.Warn(fmt.Sprintf("registration refused: %s; retrying in %s, as the gateway asked", describe(ref), round(d)),
			zap.Stringer("code", ref.Code))
		return d, ref.Code.Permanent()
	case errors.As(err, &ref) && ref.Code.Permanent():
		d := r.opts.SlowRetry
		r.log.Error(fmt.Sprintf("registration refused: %s; retrying in %s", describe(ref), round(d)),
			zap.Stringer("code", ref.Code))
		return d, true
	case ref != nil:
		d := pace.next()
		r.log.Warn(fmt.Sprintf("registration refused: %s; retrying in %s", describe(ref), round(d)),
			zap.Stringer("code", ref.Code))
		return d, false
	case errors.As(err, &hop) && hop.Permanent():
		// Slow like a permanent refusal, but the gateway never saw the
		// attempt: a session being resumed stays worth resuming.
		d := r.opts.SlowRetry
		r.log.Error(fmt.Sprintf("registration failed: %v; the proxy login must change, retrying in %s", err, round(d)))
		return d, false
	}
	d := pace.next()
	r.log.Warn(fmt.Sprintf("registration failed: %v; retrying in %s", err, round(d)))
	return d, false
}

// closed logs a CLOSE from the gateway and returns the delay before the
// next attempt.
func (r *runner) closed(ref *wire.Refusal, pace *pacing) time.Duration {
	if ref.Code.Permanent() {
		d := r.opts.SlowRetry
		r.log.Warn(fmt.Sprintf("closed by the gateway: %s; the gateway's configuration must change, retrying in %s", describe(ref), round(d)),
			zap.Stringer("code", ref.Code))
		return d
	}
	d := pace.next()
	r.log.Info(fmt.Sprintf("closed by the gateway: %s; retrying in %s", describe(ref), round(d)),
		zap.Stringer("code", ref.Code))
	return d
}

// describe renders a refusal as "code: reason".
func describe(ref *wire.Refusal) string {
	if ref.Reason == "" {
		return ref.Code.String()
	}
	return ref.Code.String() + ": " + ref.Reason
}

// round shortens a delay for a log line.
func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// sleep waits for d or until ctx ends; it reports whether ctx is still
// running.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
