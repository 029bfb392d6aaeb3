package main

// The agent as a Windows service. What the service control manager is
// asked and told is decided here, without build tags, so that it is tested
// on every system; service_windows.go only passes it on to the service
// control manager and the Event Log.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// windowsService is the Windows service that `service install` creates.
type windowsService struct {
	name, displayName, description string
	exe                            string
	args                           []string
	// restartDelays are the recovery actions: the service control
	// manager restarts the service restartDelays[0] after its first
	// failure, restartDelays[1] after its second, and so on, the last
	// delay serving for every later failure. A failure is a crash or a
	// stop with an exit status other than 0.
	restartDelays []time.Duration
	// failureReset is how long the service must run without failing for
	// its count of failures to start again from 0.
	failureReset time.Duration
}

// newWindowsService returns the service that runs exe with args: it starts
// with Windows, is restarted 5 s, 30 s, then 60 s after it fails, and its
// count of failures resets after a day.
func newWindowsService(exe string, args []string) windowsService {
	return windowsService{
		name:          serviceName,
		displayName:   "tildegate agent",
		description:   "Connects the services of this server to its tildegate gateways, as backbalance.bin says.",
		exe:           exe,
		args:          args,
		restartDelays: []time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second},
		failureReset:  24 * time.Hour,
	}
}

// scmOps are the operations of the Windows service control manager that
// `service` uses.
type scmOps interface {
	// create installs s to start with Windows, with its recovery actions,
	// and registers its Event Log source. It fails when s is installed
	// already.
	create(s windowsService) error
	// remove deletes the service name and its Event Log source.
	remove(name string) error
	start(name string) error
	// stop asks the service name to stop and waits until it has.
	stop(name string) error
	// state returns the state of the service name: running, stopped, ...
	state(name string) (string, error)
}

// scmHost is the serviceHost of Windows.
type scmHost struct {
	ops scmOps
	out io.Writer
}

func (h scmHost) install(exe string, args []string, _ config) error {
	s := newWindowsService(exe, args)
	if err := h.ops.create(s); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "installed the service %s, which starts with Windows: %s %s\n", s.name, exe, strings.Join(args, " "))
	if err := h.ops.start(s.name); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "started it; it logs to the Event Log (Windows Logs > Application, source %s)\n", s.name)
	return nil
}

func (h scmHost) uninstall() error {
	state, err := h.ops.state(serviceName)
	if err != nil {
		return err
	}
	if state != "stopped" {
		if err := h.ops.stop(serviceName); err != nil {
			return err
		}
		fmt.Fprintf(h.out, "stopped the service %s\n", serviceName)
	}
	if err := h.ops.remove(serviceName); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "removed the service %s\n", serviceName)
	return nil
}

func (h scmHost) start() error {
	if err := h.ops.start(serviceName); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "started the service %s\n", serviceName)
	return nil
}

func (h scmHost) stop() error {
	if err := h.ops.stop(serviceName); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "stopped the service %s\n", serviceName)
	return nil
}

func (h scmHost) status() error {
	state, err := h.ops.state(serviceName)
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "%s: %s\n", serviceName, state)
	return nil
}

// scmState is the state of the running service as the service control
// manager knows it. The service is Stopped once controlLoop returns.
type scmState int

const (
	scmStartPending scmState = iota
	scmRunning
	scmStopPending
)

// scmRequest is a control request of the service control manager.
type scmRequest int

const (
	// scmIgnored is a request that the service does not accept.
	scmIgnored scmRequest = iota
	// scmInterrogate asks for the service's state again.
	scmInterrogate
	scmStop
	// scmShutdown is Windows shutting down: the service stops.
	scmShutdown
	// scmParamChange asks the service to reload its configuration.
	scmParamChange
)

// statusSetter passes the state of the service on to the service control
// manager.
type statusSetter interface {
	setStatus(s scmState)
}

// scm is the manager of the agent run as a Windows service.
type scm struct {
	status statusSetter
	events eventWriter
	reload chan struct{}

	mu    sync.Mutex
	state scmState
}

// set moves the service on to state st, unless it is there or past it:
// a service goes from StartPending to Running to StopPending, never back.
func (s *scm) set(st scmState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st > s.state {
		s.state = st
		s.status.setStatus(st)
	}
}

// interrogate tells the state again.
func (s *scm) interrogate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.setStatus(s.state)
}

// tell moves the service to Running when the agent is ready, and to
// StopPending when it stops; Windows services have no state for a reload.
func (s *scm) tell(p phase) error {
	switch p {
	case phaseReady:
		s.set(scmRunning)
	case phaseStopping:
		s.set(scmStopPending)
	}
	return nil
}

func (s *scm) reloads() <-chan struct{} { return s.reload }

func (s *scm) watchdogInterval() time.Duration { return 0 }

// logger returns log writing to the Event Log in place of stderr, which a
// service does not have, at the same level.
func (s *scm) logger(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return newEventCore(c, s.events) }))
}

// controlLoop runs the agent as a Windows service and returns its exit
// status. The service is StartPending until the agent has loaded its
// configuration and runs, then Running; a Stop or Shutdown request makes
// it StopPending and ends the agent's context, after which the agent
// closes its registrations and returns. Interrogate tells the state again
// and ParamChange reloads the configuration. requests are the service
// control manager's, each of which kind reads; runAgent runs the agent
// until its context ends, that context carrying the service's manager,
// which logs to events.
func controlLoop[R any](requests <-chan R, kind func(R) scmRequest, status statusSetter, events eventWriter,
	runAgent func(context.Context) int) int {
	s := &scm{status: status, events: events, reload: make(chan struct{}, 1)}
	status.setStatus(scmStartPending)
	ctx, cancel := context.WithCancel(withManager(context.Background(), s))
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- runAgent(ctx) }()
	for {
		select {
		case r := <-requests:
			switch kind(r) {
			case scmInterrogate:
				s.interrogate()
			case scmStop, scmShutdown:
				s.set(scmStopPending)
				cancel()
			case scmParamChange:
				select {
				case s.reload <- struct{}{}:
				default: // a reload is pending already
				}
			}
		case code := <-done:
			return code
		}
	}
}

// runService runs the command with args under the service control
// manager: it reports what the command would write to stderr, which a
// service does not have, to events as one error.
func runService(ctx context.Context, args []string, events eventWriter) int {
	var stderr strings.Builder
	code := run(ctx, args, io.Discard, &stderr)
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		writeEvent(events, eventError, msg)
	}
	return code
}
