// Command loadagents runs many agents against one gateway, for the scale
// benchmark and tests: agent number i serves the back entry named by
// -name (with i) with the password of -password, through the real agent
// library and protocol, each from a source address of its own (127.x.y.z
// from -first-source on), so that the gateway sees as many agents as a
// farm of customers' servers. The agents are split across processes of
// -per-process each, since a process may hold 20,000 open files at most.
//
// Every -report, it prints one JSON line on stdout: how many agents are
// registered, and how many registrations were deferred by a busy gateway,
// refused, or failed so far. It stops on SIGINT or SIGTERM.
//
//	loadagents -gateway 127.0.0.1:8443 -ca ca.pem -count 10000 -name 'b%d' -password 'pw-%d'
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// config is what the flags say.
type config struct {
	gateway, ca, name, password, local string
	first, count, perProcess           int
	firstSource                        netip.Addr
	report                             time.Duration
	child                              bool
}

// Report is one line of the tool's output.
type Report struct {
	// Agents is how many agents run; Registered how many of them are
	// registered now.
	Agents     int `json:"agents"`
	Registered int `json:"registered"`
	// Deferred, Refused and Failed count the registrations deferred by a
	// busy gateway, refused for another reason, and failed before any
	// answer, since the start.
	Deferred int64 `json:"deferred"`
	Refused  int64 `json:"refused"`
	Failed   int64 `json:"failed"`
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadagents:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.child || cfg.count <= cfg.perProcess {
		err = runAgents(ctx, cfg)
	} else {
		err = runChildren(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadagents:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var source string
	fs := flag.NewFlagSet("loadagents", flag.ContinueOnError)
	fs.StringVar(&cfg.gateway, "gateway", "", "the gateway's TLS `host:port`")
	fs.StringVar(&cfg.ca, "ca", "", "PEM `file` of the gateway's CA")
	fs.StringVar(&cfg.name, "name", "b%d", "the entries' names, a `format` of the agent's number")
	fs.StringVar(&cfg.password, "password", "pw-%d", "the entries' passwords, a `format` of the agent's number")
	fs.StringVar(&cfg.local, "local", "", "the `host:port` the agents serve (default: an HTTP server of the tool's own)")
	fs.IntVar(&cfg.first, "first", 0, "the `number` of the first agent")
	fs.IntVar(&cfg.count, "count", 1000, "how many agents to run")
	fs.IntVar(&cfg.perProcess, "per-process", 4000, "agents per process at most")
	fs.StringVar(&source, "first-source", "127.1.0.1", "the source `address` of the first agent; the others count up from it")
	fs.DurationVar(&cfg.report, "report", time.Second, "how often to report")
	fs.BoolVar(&cfg.child, "child", false, "run the agents in this process (used by the tool itself)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var err error
	if cfg.firstSource, err = netip.ParseAddr(source); err != nil || !cfg.firstSource.Is4() {
		return cfg, fmt.Errorf("-first-source %q: want an IPv4 address", source)
	}
	switch {
	case cfg.gateway == "":
		return cfg, fmt.Errorf("-gateway is required")
	case cfg.count < 1 || cfg.perProcess < 1:
		return cfg, fmt.Errorf("-count and -per-process must be positive")
	}
	return cfg, nil
}

// sourceOf returns the source address of agent number i: the first
// source counted up by i, skipping the addresses that end in 0 or 255.
func sourceOf(first netip.Addr, i int) netip.Addr {
	a := first
	for range i {
		a = a.Next()
		for b := a.As4(); b[3] == 0 || b[3] == 255; b = a.As4() {
			a = a.Next()
		}
	}
	return a
}

// counter counts the agents' log lines that say how a registration went.
type counter struct {
	deferred, refused, failed atomic.Int64
	// shown limits the error lines copied to stderr.
	shown atomic.Int64
}

// core is a zap core that counts and drops, but for the first few
// errors, which it prints.
type core struct {
	zapcore.LevelEnabler
	c *counter
}

func (k core) With([]zapcore.Field) zapcore.Core { return k }

func (k core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if k.Enabled(e.Level) {
		return ce.AddCore(e, k)
	}
	return ce
}

func (k core) Write(e zapcore.Entry, _ []zapcore.Field) error {
	switch {
	case strings.HasPrefix(e.Message, "registration deferred"):
		k.c.deferred.Add(1)
		return nil
	case strings.HasPrefix(e.Message, "registration refused"):
		k.c.refused.Add(1)
	case strings.HasPrefix(e.Message, "registration failed"):
		k.c.failed.Add(1)
	}
	if e.Level >= zapcore.WarnLevel && k.c.shown.Add(1) <= 20 {
		fmt.Fprintf(os.Stderr, "%s %s\n", e.Level.CapitalString(), e.Message)
	}
	return nil
}

func (k core) Sync() error { return nil }

// runAgents runs agents first to first+count-1 in this process.
func runAgents(ctx context.Context, cfg config) error {
	local := cfg.local
	if local == "" {
		addr, err := serveLocal()
		if err != nil {
			return err
		}
		local = addr
	}
	var text strings.Builder
	for i := cfg.first; i < cfg.first+cfg.count; i++ {
		fmt.Fprintf(&text, "SSL /~~%s=%s#%s => %s;\n", fmt.Sprintf(cfg.name, i), fmt.Sprintf(cfg.password, i), cfg.gateway, local)
	}
	entries, err := balancebin.ParseBack("agents", []byte(text.String()))
	if err != nil {
		return err
	}
	counts := new(counter)
	logger := zap.New(core{LevelEnabler: zapcore.InfoLevel, c: counts})
	agents := make([]*agent.Agent, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		src := sourceOf(cfg.firstSource, cfg.first+i)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		a := agent.New(agent.Options{CAFile: cfg.ca, Logger: logger, Version: "loadagents/1", Dial: agent.DialGateway(d)})
		a.Apply([]balancebin.BackEntry{e})
		agents[i] = a
		wg.Go(func() { _ = a.Run(ctx) })
	}
	return reportEvery(ctx, cfg.report, &wg, nil, func() Report {
		r := Report{Agents: len(agents), Deferred: counts.deferred.Load(), Refused: counts.refused.Load(), Failed: counts.failed.Load()}
		for _, a := range agents {
			if st := a.Status(); len(st.Entries) == 1 && st.Entries[0].State == agent.StateRegistered {
				r.Registered++
			}
		}
		return r
	})
}

// serveLocal starts the HTTP service that the agents serve: it answers
// every request with its Host and path.
func serveLocal() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "loadagents %s %s\n", r.Host, r.URL.Path)
		}))
	}()
	return ln.Addr().String(), nil
}

// runChildren runs the agents in child processes of at most perProcess
// each, and prints the sum of their reports.
func runChildren(ctx context.Context, cfg config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// On any failure the other children stop too, and are waited for.
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		reports = make([]Report, 0, (cfg.count+cfg.perProcess-1)/cfg.perProcess)
		wg      sync.WaitGroup
		failed  = make(chan error, cap(reports))
	)
	stop := func(err error) error {
		cancel()
		wg.Wait()
		return err
	}
	for first := cfg.first; first < cfg.first+cfg.count; first += cfg.perProcess {
		n := min(cfg.perProcess, cfg.first+cfg.count-first)
		cmd := exec.CommandContext(ctx, self, "-child", "-gateway", cfg.gateway, "-ca", cfg.ca, "-name", cfg.name,
			"-password", cfg.password, "-local", cfg.local, "-first", strconv.Itoa(first), "-count", strconv.Itoa(n),
			"-first-source", cfg.firstSource.String(), "-report", cfg.report.String())
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return stop(err)
		}
		if err := cmd.Start(); err != nil {
			return stop(err)
		}
		mu.Lock()
		slot := len(reports)
		reports = append(reports, Report{Agents: n}) // within its capacity: never moved
		mu.Unlock()
		wg.Go(func() {
			lines := bufio.NewScanner(stdout)
			for lines.Scan() {
				var r Report
				if json.Unmarshal(lines.Bytes(), &r) == nil {
					mu.Lock()
					reports[slot] = r
					mu.Unlock()
				}
			}
			if err := cmd.Wait(); err != nil && ctx.Err() == nil {
				failed <- fmt.Errorf("agents %d to %d: %w", first, first+n-1, err)
			}
		})
	}
	return stop(reportEvery(ctx, cfg.report, &wg, failed, func() Report {
		var sum Report
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			sum.Agents += r.Agents
			sum.Registered += r.Registered
			sum.Deferred += r.Deferred
			sum.Refused += r.Refused
			sum.Failed += r.Failed
		}
		return sum
	}))
}

// reportEvery prints what collect reports every interval, until ctx ends
// (then it waits for wg) or failed says why it must stop.
func reportEvery(ctx context.Context, every time.Duration, wg *sync.WaitGroup, failed <-chan error, collect func() Report) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	out := json.NewEncoder(os.Stdout)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case err := <-failed:
			return err
		case <-tick.C:
		}
		if err := out.Encode(collect()); err != nil {
			return err
		}
	}
}
