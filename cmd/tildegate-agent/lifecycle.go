package main

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// phase is a step of the agent's life that its service manager hears of.
type phase int

const (
	// phaseReady: the configuration is loaded and the agent serves it, at
	// the start and again after each reload. It does not wait for the
	// gateways, so that a gateway that is down does not fail the start.
	phaseReady phase = iota
	// phaseReloading: the agent reloads its configuration.
	phaseReloading
	// phaseStopping: the agent closes its registrations, to exit.
	phaseStopping
	// phaseAlive: the agent's main loop still turns; the watchdog's ping.
	phaseAlive
)

func (p phase) String() string {
	switch p {
	case phaseReady:
		return "ready"
	case phaseReloading:
		return "reloading"
	case phaseStopping:
		return "stopping"
	}
	return "alive"
}

// A manager is the service manager that runs the agent: systemd or the
// Windows service control manager.
type manager interface {
	// tell says that the agent entered phase p.
	tell(p phase) error
	// reloads receives when the manager asks the agent to reload its
	// configuration; it is nil for a manager that never asks, or asks
	// with SIGHUP.
	reloads() <-chan struct{}
	// watchdogInterval is how often the manager wants to hear phaseAlive;
	// 0 for never.
	watchdogInterval() time.Duration
	// logger returns the logger to use under the manager: log itself, or
	// one that writes where the manager keeps the logs of its services.
	logger(log *zap.Logger) *zap.Logger
}

type managerKey struct{}

// withManager returns a copy of ctx that makes serve tell m of the agent's
// phases, in place of the manager it would find itself (systemd's
// NOTIFY_SOCKET).
func withManager(ctx context.Context, m manager) context.Context {
	return context.WithValue(ctx, managerKey{}, m)
}

// supervisor passes the phases of serve on to its service manager, if it
// has one, in an order every manager accepts: once stopping, the agent is
// neither ready nor reloading again.
type supervisor struct {
	m       manager // nil when the agent runs on its own
	log     *zap.Logger
	ticker  *time.Ticker // nil without a watchdog
	unwatch func() bool  // stops waiting for the end of serve's context
	ctx     context.Context

	mu       sync.Mutex
	stopping bool
}

// supervise returns the supervisor of a run of serve under the manager
// that ctx carries, else under the one this host's environment names, and
// the logger serve is to use. It tells the manager phaseStopping when ctx
// ends. Call close when serve returns.
func supervise(ctx context.Context, log *zap.Logger) (*supervisor, *zap.Logger) {
	m, _ := ctx.Value(managerKey{}).(manager)
	if m == nil {
		var err error
		if m, err = hostManager(); err != nil {
			log.Warn("the service manager will not hear from the agent: " + err.Error())
		}
	}
	s := &supervisor{m: m, log: log, ctx: ctx}
	if m == nil {
		return s, log
	}
	s.log = m.logger(log)
	if d := m.watchdogInterval(); d > 0 {
		s.ticker = time.NewTicker(d)
	}
	s.unwatch = context.AfterFunc(ctx, func() { s.tell(phaseStopping) })
	return s, s.log
}

// tell says that the agent entered phase p.
func (s *supervisor) tell(p phase) {
	if s.m == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping && p != phaseAlive {
		return
	}
	s.stopping = s.stopping || p == phaseStopping
	if err := s.m.tell(p); err != nil {
		s.log.Warn("cannot tell the service manager: "+err.Error(), zap.Stringer("phase", p))
	}
}

// reloads receives when the manager asks for a reload.
func (s *supervisor) reloads() <-chan struct{} {
	if s.m == nil {
		return nil
	}
	return s.m.reloads()
}

// watchdog receives each time the agent is to tell phaseAlive.
func (s *supervisor) watchdog() <-chan time.Time {
	if s.ticker == nil {
		return nil
	}
	return s.ticker.C
}

// close ends the supervision.
func (s *supervisor) close() {
	if s.ticker != nil {
		s.ticker.Stop()
	}
	if s.unwatch != nil {
		s.unwatch()
	}
	// The watch runs in a goroutine of its own, which the process's exit
	// may beat: say it here too (tell says it once).
	if s.ctx != nil && s.ctx.Err() != nil {
		s.tell(phaseStopping)
	}
}
