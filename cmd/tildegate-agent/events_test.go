package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// event is an entry of the Event Log.
type event struct {
	typ eventType
	msg string
}

// fakeEventLog is an eventWriter that keeps what it is given.
type fakeEventLog struct {
	mu     sync.Mutex
	events []event
}

func (f *fakeEventLog) add(t eventType, eid uint32, msg string) error {
	if eid != eventID {
		return fmt.Errorf("event id %d, want %d", eid, eventID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{t, msg})
	return nil
}

func (f *fakeEventLog) Info(eid uint32, msg string) error    { return f.add(eventInfo, eid, msg) }
func (f *fakeEventLog) Warning(eid uint32, msg string) error { return f.add(eventWarning, eid, msg) }
func (f *fakeEventLog) Error(eid uint32, msg string) error   { return f.add(eventError, eid, msg) }

func (f *fakeEventLog) all() []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]event(nil), f.events...)
}

// wait waits for an entry of type typ whose message holds all the parts.
func (f *fakeEventLog) wait(t *testing.T, typ eventType, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range f.all() {
			if e.typ == typ && containsAll(e.msg, parts) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no event of type %d with %q in %+v", typ, parts, f.all())
}

func TestEventTypes(t *testing.T) {
	for l, want := range map[zapcore.Level]eventType{
		zapcore.DebugLevel:  eventInfo,
		zapcore.InfoLevel:   eventInfo,
		zapcore.WarnLevel:   eventWarning,
		zapcore.ErrorLevel:  eventError,
		zapcore.DPanicLevel: eventError,
		zapcore.PanicLevel:  eventError,
		zapcore.FatalLevel:  eventError,
	} {
		if got := eventTypeOf(l); got != want {
			t.Errorf("eventTypeOf(%v) = %d, want %d", l, got, want)
		}
	}
}

func TestEventCore(t *testing.T) {
	var events fakeEventLog
	log := zap.New(newEventCore(zapcore.InfoLevel, &events)).Named("agent")
	log.Debug("hidden")
	log.Info("registered", zap.String("name", "home"), zap.Duration("after", 1500*time.Millisecond))
	log.With(zap.String("name", "office")).Warn("refused")
	log.Error("cannot run: oops")
	want := []event{
		{eventInfo, "agent\tregistered\t{\"name\": \"home\", \"after\": \"1.5s\"}"},
		{eventWarning, "agent\trefused\t{\"name\": \"office\"}"},
		{eventError, "agent\tcannot run: oops"},
	}
	if got := events.all(); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

// TestServiceLogger: under the service control manager the command's
// logger writes to the Event Log and no longer to stderr, at the level of
// -log-level.
func TestServiceLogger(t *testing.T) {
	var stderr bytes.Buffer
	log, err := newLogger("json", "warn", &stderr)
	if err != nil {
		t.Fatal(err)
	}
	var events fakeEventLog
	log = (&scm{events: &events}).logger(log)
	log.Info("hidden")
	log.Warn("slow", zap.Int("n", 3))
	if got, want := events.all(), []event{{eventWarning, "slow\t{\"n\": 3}"}}; !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr %q, want nothing", stderr.String())
	}
}

func TestRunServiceReportsStderr(t *testing.T) {
	var events fakeEventLog
	if code := runService(t.Context(), []string{"-no-such-flag"}, &events); code != 2 {
		t.Errorf("status %d, want 2", code)
	}
	got := events.all()
	if len(got) != 1 || got[0].typ != eventError || !strings.HasPrefix(got[0].msg, "flag provided but not defined: -no-such-flag\n") {
		t.Errorf("events %+v, want one error about the flag", got)
	}
}
