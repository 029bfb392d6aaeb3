package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"golang.org/x/sys/unix"
)

// agentBinary builds the agent's executable for the test.
func agentBinary(t *testing.T) string {
	t.Helper()
	bin, err := (&e2e.Env{Dir: t.TempDir()}).Build("tildegate-agent", ".")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// notifySocket is the socket of NOTIFY_SOCKET, as systemd holds it.
type notifySocket struct {
	name     string // the value of NOTIFY_SOCKET
	messages chan string
}

// listenNotify opens the datagram socket name (a path, or @ and the name
// of an abstract socket) and receives its messages until the end of the
// test.
func listenNotify(t *testing.T, name string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &notifySocket{name: name, messages: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.messages <- string(buf[:n])
		}
	}()
	return s
}

// next returns the next message that is not a watchdog ping, and the
// number of pings before it.
func (s *notifySocket) next(t *testing.T) (string, int) {
	t.Helper()
	pings := 0
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.messages:
			if m != "WATCHDOG=1" {
				return m, pings
			}
			pings++
		case <-timeout:
			t.Fatal("timed out waiting for a message on NOTIFY_SOCKET")
		}
	}
}

// expect receives the next message that is not a watchdog ping and
// checks that it is want.
func (s *notifySocket) expect(t *testing.T, want string) {
	t.Helper()
	if got, _ := s.next(t); got != want {
		t.Fatalf("NOTIFY_SOCKET got %q, want %q", got, want)
	}
}

// startAgent starts the agent's executable bin with args and the
// environment variables env besides the test's own, and kills it at the
// end of the test. It returns the process and its stderr.
func startAgent(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, stderr
}

// waitExit waits for the process to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not exit")
		return -1
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestNotify runs the agent's executable as systemd runs a service of
// Type=notify, with a gateway that does not answer: it is ready once it
// runs, says when it reloads and when it stops, and pings the watchdog.
func TestNotify(t *testing.T) {
	bin := agentBinary(t)
	path := writeConfig(t, "/~~home=pw#127.0.0.1:1;\n") // nothing listens on port 1
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	cmd, stderr := startAgent(t, bin, []string{"NOTIFY_SOCKET=" + sock.name, "WATCHDOG_USEC=100000"}, "-config", path)
	defer func() {
		if t.Failed() {
			t.Logf("the agent's log:\n%s", stderr)
		}
	}()

	sock.expect(t, "READY=1")
	before := monotonicUsec(t)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	msg, _ := sock.next(t)
	after := monotonicUsec(t)
	usec, ok := strings.CutPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=")
	if n, err := strconv.ParseInt(usec, 10, 64); !ok || err != nil || n < before || n > after {
		t.Errorf("after SIGHUP NOTIFY_SOCKET got %q, want RELOADING=1 and MONOTONIC_USEC between %d and %d", msg, before, after)
	}
	sock.expect(t, "READY=1")

	// 50 ms apart, half of WATCHDOG_USEC.
	for pings := 0; pings < 3; {
		select {
		case m := <-sock.messages:
			if m != "WATCHDOG=1" {
				t.Fatalf("NOTIFY_SOCKET got %q, want WATCHDOG=1", m)
			}
			pings++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d watchdog pings, want 3", pings)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sock.expect(t, "STOPPING=1")
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(stderr.String(), "tildegate-agent stopped") {
		t.Errorf("the agent did not log its stop:\n%s", stderr)
	}
}

// TestNotifyAbstract: NOTIFY_SOCKET may name an abstract socket, and
// without WATCHDOG_USEC there is no watchdog.
func TestNotifyAbstract(t *testing.T) {
	bin := agentBinary(t)
	path := writeConfig(t, "/~~home=pw#127.0.0.1:1;\n")
	sock := listenNotify(t, fmt.Sprintf("@tildegate-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	cmd, _ := startAgent(t, bin, []string{"NOTIFY_SOCKET=" + sock.name}, "-config", path)
	sock.expect(t, "READY=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg, pings := sock.next(t); msg != "STOPPING=1" || pings > 0 {
		t.Errorf("NOTIFY_SOCKET got %d watchdog pings and %q, want STOPPING=1 alone", pings, msg)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestSystemdFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		socket   string
		interval time.Duration
		err      bool
	}{
		{env: map[string]string{}},
		{env: map[string]string{"NOTIFY_SOCKET": "relative/path"}, err: true},
		{env: map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify"}, socket: "/run/systemd/notify"},
		{env: map[string]string{"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "30000000"}, socket: "@abstract", interval: 15 * time.Second},
		{env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, socket: "/n", interval: time.Second},
		{env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "43"}, socket: "/n"},
		{env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "soon"}, socket: "/n"},
	} {
		n, err := systemdFromEnv(func(k string) string { return tc.env[k] }, 42)
		socket, interval := "", time.Duration(0)
		if n != nil {
			socket, interval = n.addr.Name, n.interval
		}
		if socket != tc.socket || interval != tc.interval || (err != nil) != tc.err {
			t.Errorf("%v: socket %q, watchdog every %v, error %v; want %q, %v and an error: %v",
				tc.env, socket, interval, err, tc.socket, tc.interval, tc.err)
		}
	}
}
