package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/testgateway"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// running is an agent started by startAgent.
type running struct {
	*Agent
	logs *observer.ObservedLogs
	stop func() // cancels Run and waits for it
}

// startAgent runs an agent with opts serving entries, logging to the test
// and to an observer, and stops it at the end of the test.
func startAgent(t *testing.T, opts Options, entries ...balancebin.BackEntry) *running {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	opts.Logger = zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	a := New(opts)
	a.Apply(entries)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	r := &running{Agent: a, logs: logs}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// waitLog waits for a log line whose message contains msg and whose
// fields include the given ones (key, value, key, value...).
func (r *running) waitLog(t *testing.T, msg string, fields ...string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range r.logs.All() {
			if strings.Contains(e.Message, msg) && hasFields(e, fields) {
				return e
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line with %q %v", msg, fields)
	panic("unreachable")
}

// countLogs counts the log lines whose message contains msg.
func (r *running) countLogs(msg string) int {
	n := 0
	for _, e := range r.logs.All() {
		if strings.Contains(e.Message, msg) {
			n++
		}
	}
	return n
}

// waitLogs waits until n log lines or more have a message that contains
// msg.
func (r *running) waitLogs(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.countLogs(msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d log lines with %q, want %d", r.countLogs(msg), msg, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasFields(e observer.LoggedEntry, fields []string) bool {
	m := e.ContextMap()
	for i := 0; i+1 < len(fields); i += 2 {
		if fmt.Sprint(m[fields[i]]) != fields[i+1] {
			return false
		}
	}
	return true
}

// optionsFor returns agent options that reach g.
func optionsFor(g *testgateway.Gateway) Options {
	return Options{CAFile: g.CAFile}
}

// localHTTP starts a local service that answers every request with its
// path and body, and returns its address.
func localHTTP(t *testing.T) string {
	t.Helper()
	return countedHTTP(t).addr
}

// localService is a local service started by a test.
type localService struct {
	addr string
	// accepted counts the connections it accepted.
	accepted atomic.Int64
}

// countedHTTP starts the local service of localHTTP, counting the
// connections it accepts: each is counted before it is served.
func countedHTTP(t *testing.T) *localService {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "local %s %s", r.URL.Path, body)
	}))
	l := &localService{addr: srv.Listener.Addr().String()}
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			l.accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return l
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
