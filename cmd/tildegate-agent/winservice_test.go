package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// fakeSCM is the service control manager of the tests: it records the
// operations of `service` and holds one service.
type fakeSCM struct {
	calls   []string
	created windowsService
	current string // the state; "" while not installed
}

func (f *fakeSCM) create(s windowsService) error {
	f.calls = append(f.calls, "create")
	if f.current != "" {
		return errors.New("installed already")
	}
	f.created, f.current = s, "stopped"
	return nil
}

func (f *fakeSCM) op(name, op string, next string) error {
	f.calls = append(f.calls, op)
	if name != serviceName {
		return fmt.Errorf("%s of the service %q", op, name)
	}
	if f.current == "" {
		return errors.New("not installed")
	}
	f.current = next
	return nil
}

func (f *fakeSCM) remove(name string) error { return f.op(name, "remove", "") }
func (f *fakeSCM) start(name string) error  { return f.op(name, "start", "running") }
func (f *fakeSCM) stop(name string) error   { return f.op(name, "stop", "stopped") }

func (f *fakeSCM) state(name string) (string, error) {
	current := f.current
	return current, f.op(name, "state", current)
}

func TestWindowsInstall(t *testing.T) {
	f := &fakeSCM{}
	var out strings.Builder
	h := scmHost{ops: f, out: &out}
	args := []string{"-config", `C:\TSplus\backbalance.bin`, "-log-level", "debug"}
	if err := h.install(`C:\tildegate\tildegate-agent.exe`, args, config{}); err != nil {
		t.Fatal(err)
	}
	s := f.created
	if s.name != "tildegate-agent" || s.exe != `C:\tildegate\tildegate-agent.exe` || !slices.Equal(s.args, args) {
		t.Errorf("created %q running %q %q", s.name, s.exe, s.args)
	}
	if want := []time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second}; !slices.Equal(s.restartDelays, want) || s.failureReset != 24*time.Hour {
		t.Errorf("recovery: restart after %v, reset after %v; want %v and 24h", s.restartDelays, s.failureReset, want)
	}
	if s.displayName == "" || s.description == "" {
		t.Errorf("display name %q, description %q", s.displayName, s.description)
	}
	if !slices.Equal(f.calls, []string{"create", "start"}) || f.current != "running" {
		t.Errorf("calls %q, state %q; want create and start", f.calls, f.current)
	}
	if want := "installed the service tildegate-agent, which starts with Windows: " +
		`C:\tildegate\tildegate-agent.exe -config C:\TSplus\backbalance.bin -log-level debug`; !strings.Contains(out.String(), want) {
		t.Errorf("output %q lacks %q", out.String(), want)
	}
	if err := h.install(`C:\tildegate\tildegate-agent.exe`, args, config{}); err == nil {
		t.Error("a second install: no error")
	}

	out.Reset()
	if err := h.status(); err != nil || out.String() != "tildegate-agent: running\n" {
		t.Errorf("status: %q, %v", out.String(), err)
	}
	f.calls = nil
	if err := h.uninstall(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.calls, []string{"state", "stop", "remove"}) {
		t.Errorf("uninstall of a running service: calls %q, want state, stop, remove", f.calls)
	}
	if err := h.status(); err == nil {
		t.Error("status of a removed service: no error")
	}

	f = &fakeSCM{current: "stopped"}
	h.ops = f
	if err := h.uninstall(); err != nil || !slices.Equal(f.calls, []string{"state", "remove"}) {
		t.Errorf("uninstall of a stopped service: calls %q, %v; want state, remove", f.calls, err)
	}
}

// statusLog is a statusSetter that passes the states on.
type statusLog chan scmState

func (c statusLog) setStatus(s scmState) { c <- s }

// expect receives the states want, and checks that no other follows soon.
func (c statusLog) expect(t *testing.T, want ...scmState) {
	t.Helper()
	for _, w := range want {
		if got := testgateway.Receive(t, c, fmt.Sprintf("state %d", w)); got != w {
			t.Fatalf("state %d, want %d", got, w)
		}
	}
	testgateway.Nothing(t, c, 100*time.Millisecond, "another state")
}

// runLoop runs controlLoop on the command with args and returns its
// requests and the channel of its status.
func runLoop(t *testing.T, args []string, events eventWriter) (chan<- scmRequest, statusLog, <-chan int) {
	requests := make(chan scmRequest)
	status := make(statusLog, 16)
	done := make(chan int, 1)
	finished := make(chan struct{})
	same := func(r scmRequest) scmRequest { return r }
	go func() {
		defer close(finished)
		done <- controlLoop(requests, same, status, events, func(ctx context.Context) int { return runService(ctx, args, events) })
	}()
	t.Cleanup(func() {
		select {
		case requests <- scmStop:
			<-finished
		case <-finished:
		}
	})
	return requests, status, done
}

// TestControlLoop runs the agent under the control loop of a Windows
// service: it starts, answers, reloads and stops as the service control
// manager asks.
func TestControlLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop scmRequest
	}{{"Stop", scmStop}, {"Shutdown", scmShutdown}} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgateway.New(t, false, map[string]string{"home": "pw"})
			path := writeConfig(t, g.Line("home", "pw", ""))
			var events fakeEventLog
			requests, status, done := runLoop(t, []string{"-config", path}, &events)

			status.expect(t, scmStartPending, scmRunning)
			events.wait(t, eventInfo, "tildegate-agent started")
			home := testgateway.Receive(t, g.Controls, "the control connection of home")

			requests <- scmInterrogate
			status.expect(t, scmRunning)
			requests <- scmIgnored
			requests <- scmParamChange
			events.wait(t, eventInfo, "configuration reloaded", "the service manager asked")
			status.expect(t)

			requests <- tc.stop
			status.expect(t, scmStopPending)
			if code := testgateway.Receive(t, done, "the end of the control loop"); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
			if f := testgateway.Receive(t, home.Frames, "CLOSE of home"); f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown {
				t.Errorf("home got frame %d code %s at the stop, want CLOSE shutting-down", f.Type, f.Code)
			}
			events.wait(t, eventInfo, "tildegate-agent stopped")
			for _, e := range events.all() {
				if strings.Contains(e.msg, "pw") {
					t.Errorf("the Event Log holds a password: %q", e.msg)
				}
			}
		})
	}
}

// TestControlLoopFailedStart: a configuration that cannot be read never
// makes the service Running; it stops with the exit status 1, which is a
// failure that the recovery actions restart.
func TestControlLoopFailedStart(t *testing.T) {
	var events fakeEventLog
	_, status, done := runLoop(t, []string{"-config", t.TempDir() + "/missing.bin"}, &events)
	if code := testgateway.Receive(t, done, "the end of the control loop"); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	status.expect(t, scmStartPending)
	events.wait(t, eventError, "cannot start: reading the configuration: ", "missing.bin")
}

// TestSCMStates: the state moves forward only, whatever the order in which
// the agent and the service control manager report.
func TestSCMStates(t *testing.T) {
	status := make(statusLog, 16)
	s := &scm{status: status}
	s.tell(phaseStopping)
	s.tell(phaseReady)
	s.tell(phaseReloading)
	s.tell(phaseAlive)
	s.set(scmStopPending)
	s.interrogate()
	status.expect(t, scmStopPending, scmStopPending)
}
