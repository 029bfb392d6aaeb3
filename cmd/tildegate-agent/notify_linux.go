package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// systemdNotifier tells systemd how the agent is doing, as sd_notify(3)
// does: one datagram per message to the unix socket that NOTIFY_SOCKET
// names, a path or, when it starts with '@', an abstract socket.
type systemdNotifier struct {
	addr     *net.UnixAddr
	interval time.Duration // between watchdog pings; 0 without a watchdog
}

// hostManager returns the systemd that started the agent as a service of
// Type=notify, or nil when NOTIFY_SOCKET is not set.
func hostManager() (manager, error) {
	n, err := systemdFromEnv(os.Getenv, os.Getpid())
	if n == nil {
		return nil, err
	}
	return n, err
}

// systemdFromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from
// getenv for the process pid. It returns nil when NOTIFY_SOCKET is not
// set, and an error with nil when it is not a socket address.
func systemdFromEnv(getenv func(string) string, pid int) (*systemdNotifier, error) {
	socket := getenv("NOTIFY_SOCKET")
	switch {
	case socket == "":
		return nil, nil
	case socket[0] != '/' && socket[0] != '@':
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q is neither an absolute path nor an abstract socket (@name)", socket)
	}
	n := &systemdNotifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
	usec, err := strconv.ParseUint(getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return n, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n, nil // the watchdog is another process's
	}
	// Pinging at half the timeout, as sd_watchdog_enabled(3) advises,
	// leaves time for a ping that is late.
	n.interval = time.Duration(usec) * time.Microsecond / 2
	return n, nil
}

// message returns what systemd is told of phase p.
func (n *systemdNotifier) message(p phase) string {
	switch p {
	case phaseReady:
		return "READY=1"
	case phaseReloading:
		// systemd 253 and later want the time of the reload, on
		// CLOCK_MONOTONIC, to tell this reload from later ones.
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return "RELOADING=1"
		}
		return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
	case phaseStopping:
		return "STOPPING=1"
	}
	return "WATCHDOG=1"
}

func (n *systemdNotifier) tell(p phase) error {
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(n.message(p)))
	return err
}

// reloads is nil: systemd asks for a reload with SIGHUP (ExecReload=).
func (n *systemdNotifier) reloads() <-chan struct{} { return nil }

func (n *systemdNotifier) watchdogInterval() time.Duration { return n.interval }

// logger returns log: systemd keeps what the agent writes to stderr in its
// journal.
func (n *systemdNotifier) logger(log *zap.Logger) *zap.Logger { return log }
