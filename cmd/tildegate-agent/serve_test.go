package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// agentProcess is the command running in the test.
type agentProcess struct {
	stderr *syncBuffer
	stop   func() int // ends it as SIGINT does and returns its status
}

// startCommand runs the command with args until the end of the test.
func startCommand(t *testing.T, args ...string) *agentProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProcess{stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &syncBuffer{}, p.stderr) }()
	status := -1
	p.stop = func() int {
		cancel()
		if status < 0 {
			select {
			case status = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the command did not end after its context")
			}
		}
		return status
	}
	t.Cleanup(func() { p.stop() })
	p.waitLog(t, "tildegate-agent started")
	return p
}

// waitLog waits for a log line that holds all the parts.
func (p *agentProcess) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(p.stderr.String()) {
			if containsAll(line, parts) {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q in:\n%s", parts, p.stderr.String())
	return ""
}

func containsAll(s string, parts []string) bool {
	for _, part := range parts {
		if !strings.Contains(s, part) {
			return false
		}
	}
	return true
}

func localService(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "local %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestServeAndReload(t *testing.T) {
	g := testgateway.New(t, true, map[string]string{"home": "pw", "office": "pw2"})
	local := localService(t)
	path := writeConfig(t, g.Line("home", "pw", local))
	p := startCommand(t, "-config", path, "-ca", g.CAFile, "-spare", "3")

	// The former -spare flag is accepted, and said to be ignored.
	p.waitLog(t, "-spare is ignored: ")
	home := testgateway.Receive(t, g.Controls, "the control connection of home")
	p.waitLog(t, "registered", `"name": "home"`)
	home.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	if status, body := b.Request(t, "GET", "/hello", ""); status != 200 || body != "local /hello" {
		t.Errorf("through the agent: %d %q", status, body)
	}
	b.Close()

	// An edit replaces home by office.
	if err := os.WriteFile(path, []byte(g.Line("office", "pw2", local)), 0o600); err != nil {
		t.Fatal(err)
	}
	if f := testgateway.Receive(t, home.Frames, "CLOSE of home"); f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown {
		t.Errorf("home got frame %d code %s, want CLOSE shutting-down", f.Type, f.Code)
	}
	office := testgateway.Receive(t, g.Controls, "the control connection of office")
	if office.Name != "office" {
		t.Errorf("registered %q, want office", office.Name)
	}
	p.waitLog(t, "configuration reloaded")
	p.waitLog(t, "registered", `"name": "office"`)

	// A broken edit keeps what runs.
	if err := os.WriteFile(path, []byte("/~~office=pw2#oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "cannot reload the configuration; the running entries go on: "+path+":1:")
	testgateway.Nothing(t, office.Frames, 200*time.Millisecond, "frame after a broken edit")

	if status := p.stop(); status != 0 {
		t.Errorf("status %d after the stop signal, want 0", status)
	}
	if f := testgateway.Receive(t, office.Frames, "CLOSE of office"); f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown {
		t.Errorf("office got frame %d code %s at the stop, want CLOSE shutting-down", f.Type, f.Code)
	}
	p.waitLog(t, "tildegate-agent stopped")
	if strings.Contains(p.stderr.String(), "pw2") {
		t.Error("the log holds a password")
	}
}

func TestServeBadCAFile(t *testing.T) {
	path := writeConfig(t, "/~~home=pw#127.0.0.1:1;")
	code, _, stderr := runCommand(t, "-config", path, "-ca", path+".missing")
	if code != 1 || !strings.Contains(stderr, "root certificates") {
		t.Errorf("status %d, stderr %q; want 1 and the CA error", code, stderr)
	}
}

func TestServeBind(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	path := writeConfig(t, g.Line("home", "pw", ""))
	p := startCommand(t, "-config", path, "-bind", "127.0.0.2")
	c := testgateway.Receive(t, g.Controls, "the control connection")
	if ip := c.Conn.RemoteAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.2" {
		t.Errorf("the agent connected from %s, want 127.0.0.2 from -bind", ip)
	}
	if strings.Contains(p.stderr.String(), "-spare") {
		t.Error("the agent warns about -spare, which was not given")
	}
}
