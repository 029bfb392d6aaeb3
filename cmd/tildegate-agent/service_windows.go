package main

// The glue between winservice.go and Windows: the service control
// manager (golang.org/x/sys/windows/svc and svc/mgr) and the Event Log
// (svc/eventlog).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// pendingWait is how long the service control manager is told that
// starting or stopping may take.
const pendingWait = 30 * time.Second

// runByServiceManager runs the agent as the Windows service, when the
// service control manager started the process, and returns its exit
// status and true; otherwise it returns false at once.
func runByServiceManager() (int, bool) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return 0, false
	}
	events, err := eventlog.Open(serviceName)
	if err != nil {
		return 1, true
	}
	defer events.Close()
	h := &handler{events: events}
	if err := svc.Run(serviceName, h); err != nil {
		events.Error(eventID, "cannot run as a service: "+err.Error())
		return 1, true
	}
	return h.code, true
}

// handler is the svc.Handler of the agent.
type handler struct {
	events *eventlog.Log
	code   int
}

func (h *handler) Execute(_ []string, r <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	h.code = controlLoop(r, request, statusChanges(changes), h.events, func(ctx context.Context) int {
		return runService(ctx, os.Args[1:], h.events)
	})
	return true, uint32(h.code)
}

// request reads a control request.
func request(c svc.ChangeRequest) scmRequest {
	switch c.Cmd {
	case svc.Interrogate:
		return scmInterrogate
	case svc.Stop:
		return scmStop
	case svc.Shutdown:
		return scmShutdown
	case svc.ParamChange:
		return scmParamChange
	}
	return scmIgnored
}

// statusChanges passes states on to svc.Run.
type statusChanges chan<- svc.Status

func (c statusChanges) setStatus(s scmState) {
	switch s {
	case scmStartPending:
		c <- svc.Status{State: svc.StartPending, WaitHint: uint32(pendingWait / time.Millisecond)}
	case scmRunning:
		c <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown | svc.AcceptParamChange}
	case scmStopPending:
		c <- svc.Status{State: svc.StopPending, WaitHint: uint32(pendingWait / time.Millisecond)}
	}
}

// newServiceHost returns the service control manager; a root folder is for
// systemd units only.
func newServiceHost(root string, stdout, _ io.Writer) (serviceHost, error) {
	if root != "" {
		return nil, errors.New("-root is for systemd units, on Linux")
	}
	return scmHost{ops: mgrOps{}, out: stdout}, nil
}

// mgrOps are the scmOps of svc/mgr and svc/eventlog.
type mgrOps struct{}

// connect connects to the service control manager and opens the service
// name, unless name is empty.
func connect(name string) (*mgr.Mgr, *mgr.Service, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, explain(err)
	}
	if name == "" {
		return m, nil, nil
	}
	s, err := m.OpenService(name)
	if err != nil {
		m.Disconnect()
		if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
			return nil, nil, fmt.Errorf("the service %s is not installed", name)
		}
		return nil, nil, explain(err)
	}
	return m, s, nil
}

// explain adds what to do to an error that needs an administrator.
func explain(err error) error {
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return fmt.Errorf("%w: run it from a command prompt opened as administrator", err)
	}
	return err
}

func (mgrOps) create(ws windowsService) error {
	m, _, err := connect("")
	if err != nil {
		return err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(ws.name); err == nil {
		s.Close()
		return fmt.Errorf("the service %s is installed already: uninstall it first", ws.name)
	}
	s, err := m.CreateService(ws.name, ws.exe, mgr.Config{
		StartType:    mgr.StartAutomatic,
		ErrorControl: mgr.ErrorNormal,
		DisplayName:  ws.displayName,
		Description:  ws.description,
	}, ws.args...)
	if err != nil {
		return explain(err)
	}
	defer s.Close()
	actions := make([]mgr.RecoveryAction, len(ws.restartDelays))
	for i, d := range ws.restartDelays {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	err = s.SetRecoveryActions(actions, uint32(ws.failureReset/time.Second))
	if err == nil {
		// Exiting with a status other than 0 is a failure too.
		err = s.SetRecoveryActionsOnNonCrashFailures(true)
	}
	if err == nil {
		// A source left by an earlier installation is replaced.
		eventlog.Remove(ws.name)
		err = eventlog.InstallAsEventCreate(ws.name, eventlog.Error|eventlog.Warning|eventlog.Info)
	}
	if err != nil {
		s.Delete()
		return fmt.Errorf("setting up the service %s: %w", ws.name, err)
	}
	return nil
}

func (mgrOps) remove(name string) error {
	m, s, err := connect(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := s.Delete(); err != nil {
		return explain(err)
	}
	if err := eventlog.Remove(name); err != nil {
		return fmt.Errorf("removing the Event Log source %s: %w", name, err)
	}
	return nil
}

func (mgrOps) start(name string) error {
	m, s, err := connect(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	return explain(s.Start())
}

func (mgrOps) stop(name string) error {
	m, s, err := connect(name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Control(svc.Stop)
	if err != nil {
		return explain(err)
	}
	deadline := time.Now().Add(pendingWait)
	for st.State != svc.Stopped {
		if time.Now().After(deadline) {
			return fmt.Errorf("the service %s did not stop within %v", name, pendingWait)
		}
		time.Sleep(300 * time.Millisecond)
		if st, err = s.Query(); err != nil {
			return explain(err)
		}
	}
	return nil
}

func (mgrOps) state(name string) (string, error) {
	m, s, err := connect(name)
	if err != nil {
		return "", err
	}
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return "", explain(err)
	}
	switch st.State {
	case svc.Stopped:
		return "stopped", nil
	case svc.StartPending:
		return "start pending", nil
	case svc.StopPending:
		return "stop pending", nil
	case svc.Running:
		return "running", nil
	case svc.ContinuePending:
		return "continue pending", nil
	case svc.PausePending:
		return "pause pending", nil
	case svc.Paused:
		return "paused", nil
	}
	return fmt.Sprintf("state %d", st.State), nil
}
