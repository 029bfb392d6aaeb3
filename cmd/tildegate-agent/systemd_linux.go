package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode"
)

// unitName is the file name of the agent's systemd unit.
const unitName = serviceName + ".service"

// systemdHost is the serviceHost of Linux: a systemd unit.
type systemdHost struct {
	root string // the folder the unit is written under, "/" for this system
	// live is set when systemd runs this system and root is "/":
	// systemctl is then run, and otherwise only printed.
	live        bool
	out, errOut io.Writer
}

// newServiceHost returns the systemd host that writes units under root
// ("/" when empty).
func newServiceHost(root string, stdout, stderr io.Writer) (serviceHost, error) {
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// The test of sd_booted(3).
	_, err = os.Stat("/run/systemd/system")
	return systemdHost{root: root, live: root == "/" && err == nil, out: stdout, errOut: stderr}, nil
}

// unitPath is where the unit goes.
func (h systemdHost) unitPath() string {
	return filepath.Join(h.root, "etc/systemd/system", unitName)
}

func (h systemdHost) install(exe string, args []string, cfg config) error {
	unit, err := systemdUnit(exe, args, cfg)
	if err != nil {
		return err
	}
	path := h.unitPath()
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists already: uninstall the service first", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return explainPermission(err)
	}
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		return explainPermission(err)
	}
	fmt.Fprintf(h.out, "wrote %s\n", path)
	return h.systemctl([]string{"daemon-reload"}, []string{"enable", "--now", unitName})
}

func (h systemdHost) uninstall() error {
	path := h.unitPath()
	if _, err := os.Lstat(path); err != nil {
		return fmt.Errorf("the service is not installed: %w", err)
	}
	if h.live {
		if err := h.systemctl([]string{"disable", "--now", unitName}); err != nil {
			return err
		}
	} else {
		// What `systemctl disable` does: the link that enables the unit
		// goes (WantedBy=multi-user.target).
		link := filepath.Join(filepath.Dir(path), "multi-user.target.wants", unitName)
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return explainPermission(err)
		}
	}
	if err := os.Remove(path); err != nil {
		return explainPermission(err)
	}
	fmt.Fprintf(h.out, "removed %s\n", path)
	return h.systemctl([]string{"daemon-reload"})
}

func (h systemdHost) start() error { return h.systemctl([]string{"start", unitName}) }

func (h systemdHost) stop() error { return h.systemctl([]string{"stop", unitName}) }

func (h systemdHost) status() error {
	if !h.live {
		path := h.unitPath()
		if _, err := os.Lstat(path); err != nil {
			fmt.Fprintf(h.out, "%s: not installed (no %s)\n", serviceName, path)
			return nil
		}
		fmt.Fprintf(h.out, "%s: installed (%s)\n", serviceName, path)
	}
	return h.systemctl([]string{"status", "--no-pager", unitName})
}

// systemctl runs the systemctl commands in turn, or prints them when
// systemd does not run this system or the unit is for another root.
func (h systemdHost) systemctl(commands ...[]string) error {
	if !h.live {
		if h.root != "/" {
			fmt.Fprintf(h.out, "the unit is for the system in %s; once it runs, run there:\n", h.root)
		} else {
			fmt.Fprintln(h.out, "systemd does not run this system; once it does, run:")
		}
		for _, args := range commands {
			fmt.Fprintf(h.out, "    systemctl %s\n", strings.Join(args, " "))
		}
		return nil
	}
	for _, args := range commands {
		fmt.Fprintf(h.out, "systemctl %s\n", strings.Join(args, " "))
		cmd := exec.Command("systemctl", args...)
		cmd.Stdout, cmd.Stderr = h.out, h.errOut
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	return nil
}

// explainPermission adds what to do to a permission error.
func explainPermission(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: run it as root", err)
	}
	return err
}

// systemdUnit returns the unit that runs exe with args, the agent's flags
// for cfg: systemd starts the agent at boot, reloads it with SIGHUP, and
// restarts it when it fails or its main loop stops pinging the watchdog.
// It runs in a sandbox that leaves it what it needs: reading its files
// and connecting out.
func systemdUnit(exe string, args []string, cfg config) (string, error) {
	execStart, err := systemdWord(exe, true)
	if err != nil {
		return "", err
	}
	for _, a := range args {
		w, err := systemdWord(a, true)
		if err != nil {
			return "", err
		}
		execStart += " " + w
	}
	// The sandbox hides the home folders and gives the agent a /tmp of
	// its own: what it reads there is put back in place, read-only.
	read := []string{exe, filepath.Dir(cfg.file)}
	if cfg.caFile != "" {
		read = append(read, cfg.caFile)
	}
	protectHome := "yes"
	var binds []string
	for _, p := range read {
		home := under(p, "/home", "/root", "/run/user")
		if !home && !under(p, "/tmp", "/var/tmp") {
			continue
		}
		if home {
			protectHome = "tmpfs" // where bind mounts can go
		}
		w, err := systemdWord(p, false)
		if err != nil {
			return "", err
		}
		binds = append(binds, w)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by tildegate-agent service install; tildegate-agent service uninstall removes it.
[Unit]
Description=tildegate agent: connects the services of this server to its tildegate gateways
Documentation=https://github.com/tildegate/tildegate#running-the-agent-as-a-service
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart=%s
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
WatchdogSec=30s
TimeoutStopSec=30s

# The agent reads its configuration, connects out over TCP and writes
# nothing. It runs as root, to read a backbalance.bin that only root may
# read, but without any capability, in a user namespace of its own.
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
PrivateUsers=yes
ProtectSystem=strict
ProtectHome=%s
`, execStart, protectHome)
	if len(binds) > 0 {
		fmt.Fprintf(&b, "BindReadOnlyPaths=%s\n", strings.Join(binds, " "))
	}
	b.WriteString(`PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
PrivateMounts=yes
ProtectProc=invisible
ProcSubset=pid
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
DevicePolicy=closed
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
`)
	return b.String(), nil
}

// under reports whether path is one of dirs or lies beneath one.
func under(path string, dirs ...string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// systemdWord returns s as one word of a unit file: a command line's when
// inExec, else a path list's. systemd's specifiers (%) and, in a command
// line, variables ($) are escaped; a word with other characters than
// letters, digits and -_./+,@= is quoted.
func systemdWord(s string, inExec bool) (string, error) {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", fmt.Errorf("%q: a control character cannot go into a systemd unit", s)
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if inExec {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) || strings.ContainsRune("-_./+,@=%$", r))
	})
	if plain {
		return s, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}
