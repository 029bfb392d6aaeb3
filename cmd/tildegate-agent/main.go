// Command tildegate-agent connects the services of a server that a
// tildegate gateway cannot reach to that gateway: it reads backbalance.bin,
// registers each entry with its gateway over an outgoing connection, and
// carries the gateway's requests to the local service.
//
// Usage:
//
//	tildegate-agent [-config FILE] [-check] [-ca FILE] [-insecure]
//	                [-bind ADDRESS] [-log-format console|json] [-log-level LEVEL]
//	                [-status-addr HOST:PORT] [-dns HOST:PORT] [-resolve-interval DURATION]
//	                [-version]
//
// It reloads backbalance.bin when the file changes and on SIGHUP, and
// closes its registrations and exits on SIGINT or SIGTERM.
//
//	tildegate-agent service install|uninstall|start|stop|status [flags]
//
// makes it a service of the system: a systemd unit, or a Windows service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/tildegate/tildegate/agent"
)

// config is what the command line asks for.
type config struct {
	file      string
	check     bool
	version   bool
	logFormat string
	logLevel  string
	caFile    string
	insecure  bool
	// spareGiven is set when the former -spare flag was given, which is
	// now ignored with a warning.
	spareGiven bool
	bind       string
	statusAddr string
	// dns is the DNS server (host:port) that resolves the gateways' hosts;
	// empty means the system's resolver.
	dns string
	// resolveInterval is how often the gateways' hosts are looked up
	// again.
	resolveInterval time.Duration
}

func main() {
	if code, ok := runByServiceManager(); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status. It stops serving when
// ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "service" {
		return serviceCommand(args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case cfg.version:
		fmt.Fprintln(stdout, versionLine())
		return 0
	case cfg.check:
		return check(cfg, stdout, stderr)
	}
	log, err := newLogger(cfg.logFormat, cfg.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return 2
	}
	defer log.Sync()
	return serve(ctx, cfg, log)
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("tildegate-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.file, "config", defaultConfig(), "the backbalance.bin `file` to serve")
	fs.BoolVar(&cfg.check, "check", false, "check the configuration, say what each entry means, and exit")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	fs.StringVar(&cfg.logFormat, "log-format", "console", "log format: console or json")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "least level logged: debug, info, warn or error")
	fs.StringVar(&cfg.caFile, "ca", "", "PEM `file` of root certificates for the gateway's TLS (default: the system's)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the gateway's TLS certificate")
	fs.IntVar(new(int), "spare", 0, "ignored: sessions are multiplexed over the back connections the gateway asks for")
	fs.StringVar(&cfg.bind, "bind", "", "local IP `address` to connect to the gateways from (default: the system's choice)")
	fs.StringVar(&cfg.statusAddr, "status-addr", "", "serve /ready, /status and /metrics at `host:port`; keep it on loopback (default: off)")
	fs.StringVar(&cfg.dns, "dns", "", "resolve the gateways' hosts with the DNS server at `host:port` (default: the system's resolver)")
	fs.DurationVar(&cfg.resolveInterval, "resolve-interval", agent.DefaultResolveInterval,
		"look the gateways' hosts up again this often, to follow gateways that join or leave their DNS")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tildegate-agent [flags]\n\n"+
			"tildegate-agent registers the entries of backbalance.bin with their tildegate gateways\n"+
			"and carries the gateways' requests to the local services.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return config{}, err
	}
	if _, err := bindDial(cfg.bind); err != nil {
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return config{}, err
	}
	if err := checkDNS(cfg.dns); err != nil {
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return config{}, err
	}
	if cfg.resolveInterval <= 0 {
		err := fmt.Errorf("-resolve-interval %s: want a positive duration", cfg.resolveInterval)
		fmt.Fprintln(stderr, "tildegate-agent:", err)
		return config{}, err
	}
	fs.Visit(func(f *flag.Flag) { cfg.spareGiven = cfg.spareGiven || f.Name == "spare" })
	return cfg, nil
}

// defaultConfig is backbalance.bin in the folder of the executable.
func defaultConfig() string {
	exe, err := os.Executable()
	if err != nil {
		return "backbalance.bin"
	}
	return filepath.Join(filepath.Dir(exe), "backbalance.bin")
}
