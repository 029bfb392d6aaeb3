package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// serviceName names the agent's service: the systemd unit
// tildegate-agent.service, the Windows service and its Event Log source.
const serviceName = "tildegate-agent"

// serviceUsage is the usage of `tildegate-agent service`.
const serviceUsage = `usage: tildegate-agent service install [-root DIR] [agent flags]
       tildegate-agent service uninstall|start|stop|status [-root DIR]

install makes the agent a service of this system, with the agent flags
given (-config FILE, -ca FILE, -bind ADDRESS, ...), and starts it: on
Windows a service of the service control manager that starts with Windows,
is restarted when it fails and logs to the Event Log; on Linux a systemd
unit. -root (Linux only) writes the unit under DIR instead of /, to prepare
a system image: systemctl is then left to you.
`

// A serviceHost carries out `service` on this system's service manager.
type serviceHost interface {
	// install makes the executable exe, run with args, a service that
	// starts with the system, and starts it.
	install(exe string, args []string, cfg config) error
	// uninstall stops the service and removes it.
	uninstall() error
	start() error
	stop() error
	// status prints the state of the service.
	status() error
}

// serviceCommand is `tildegate-agent service ACTION ...`; it returns the
// exit status.
func serviceCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return 2
	}
	action, rest := args[0], args[1:]
	switch action {
	case "-h", "-help", "--help":
		fmt.Fprint(stderr, serviceUsage)
		return 0
	case "install", "uninstall", "start", "stop", "status":
	default:
		fmt.Fprintf(stderr, "tildegate-agent: unknown service action %q\n\n%s", action, serviceUsage)
		return 2
	}
	rest, root, err := takeFlag(rest, "root")
	if err == nil && action != "install" && len(rest) > 0 {
		err = fmt.Errorf("service %s takes no argument but -root, not %q", action, rest[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "tildegate-agent: %v\n\n%s", err, serviceUsage)
		return 2
	}
	host, err := newServiceHost(root, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return 2
	}
	switch action {
	case "install":
		err = installService(host, rest, stderr)
	case "uninstall":
		err = host.uninstall()
	case "start":
		err = host.start()
	case "stop":
		err = host.stop()
	default:
		err = host.status()
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		// systemctl said why.
		return exit.ExitCode()
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return 1
	}
	return 0
}

// errUsage is a mistake on the command line, already reported.
var errUsage = errors.New("usage")

// installService is `service install`, args being the agent's flags.
func installService(host serviceHost, args []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("cannot find the agent's executable: %w", err)
	}
	args, cfg, err := serviceArgs(args, stderr)
	if err != nil {
		return err
	}
	if _, err := load(cfg.file); err != nil {
		return fmt.Errorf("the service would not start: %w", err)
	}
	return host.install(exe, args, cfg)
}

// serviceArgs checks the agent flags args as the agent will read them and
// returns them for the service, which does not run in the current folder:
// -config first, absolute (beside the executable when args do not give
// it), -ca absolute, then the other flags as they are. It reports flag
// errors to stderr and returns errUsage for them.
func serviceArgs(args []string, stderr io.Writer) ([]string, config, error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return nil, config{}, errUsage
	}
	if cfg.check || cfg.version {
		fmt.Fprintln(stderr, "tildegate-agent: -check and -version are not for a service")
		return nil, config{}, errUsage
	}
	rest, _, _ := takeFlag(args, "config")
	rest, _, _ = takeFlag(rest, "ca")
	if cfg.file, err = filepath.Abs(cfg.file); err != nil {
		return nil, config{}, err
	}
	out := []string{"-config", cfg.file}
	if cfg.caFile != "" {
		if cfg.caFile, err = filepath.Abs(cfg.caFile); err != nil {
			return nil, config{}, err
		}
		out = append(out, "-ca", cfg.caFile)
	}
	out = append(out, rest...)
	// A flag's value that looks like -config or -ca would have been taken
	// for the flag: make sure the service reads what was meant.
	if got, err := parseFlags(out, io.Discard); err != nil || got.file != cfg.file || got.caFile != cfg.caFile {
		return nil, config{}, fmt.Errorf("cannot make -config and -ca absolute in %q", args)
	}
	return out, cfg, nil
}

// takeFlag removes every -name and --name flag from args, with its value
// (-name VALUE or -name=VALUE), and returns the rest and the last value.
func takeFlag(args []string, name string) (rest []string, value string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		flagName, v, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || flagName != name {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, "", fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			v = args[i]
		}
		value = v
	}
	return rest, value, nil
}
