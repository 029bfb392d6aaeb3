package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeManager records the phases it is told.
type fakeManager struct {
	mu       sync.Mutex
	phases   []phase
	interval time.Duration
	fail     bool
}

func (f *fakeManager) tell(p phase) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases = append(f.phases, p)
	if f.fail {
		return errors.New("no one listens")
	}
	return nil
}

func (f *fakeManager) told() []phase {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.phases)
}

func (f *fakeManager) reloads() <-chan struct{}           { return nil }
func (f *fakeManager) watchdogInterval() time.Duration    { return f.interval }
func (f *fakeManager) logger(log *zap.Logger) *zap.Logger { return log.Named("managed") }

// TestSupervisor: once stopping, the agent is neither ready nor reloading
// again, though its watchdog goes on; stopping is told when the context
// ends.
func TestSupervisor(t *testing.T) {
	m := &fakeManager{interval: time.Millisecond}
	ctx, cancel := context.WithCancel(withManager(context.Background(), m))
	sv, log := supervise(ctx, zap.NewNop())
	defer sv.close()
	if log.Name() != "managed" {
		t.Errorf("the logger is not the manager's")
	}
	sv.tell(phaseReady)
	sv.tell(phaseReloading)
	sv.tell(phaseReady)
	<-sv.watchdog()
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(m.told(), phaseStopping) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	sv.tell(phaseReloading)
	sv.tell(phaseReady)
	sv.tell(phaseAlive)
	want := []phase{phaseReady, phaseReloading, phaseReady, phaseStopping, phaseAlive}
	if got := m.told(); !slices.Equal(got, want) {
		t.Errorf("told %v, want %v", got, want)
	}
}

func TestSupervisorAlone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sv, _ := supervise(t.Context(), zap.NewNop())
	defer sv.close()
	sv.tell(phaseReady)
	if sv.reloads() != nil || sv.watchdog() != nil {
		t.Error("an agent without a service manager gets reloads or a watchdog")
	}
}

func TestSupervisorLogsFailures(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	sv, _ := supervise(withManager(t.Context(), &fakeManager{fail: true}), zap.New(core))
	defer sv.close()
	sv.tell(phaseReady)
	if entries := logs.All(); len(entries) != 1 || entries[0].Level != zapcore.WarnLevel ||
		!strings.HasPrefix(entries[0].Message, "cannot tell the service manager: no one listens") {
		t.Errorf("logged %v, want a warning", entries)
	}
}
