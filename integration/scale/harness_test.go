// Package scale tests and measures a gateway with thousands of back
// entries and agents, with real processes: the Caddy binary with
// tildegate as the gateway, and loadagents (integration/loadagents), which
// runs many agents of the real agent library from source addresses of
// their own.
package scale

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// env has the binaries under test, built once for the package; loadAgents
// is the load tool's, tlsFloor the floor's (integration/tlsfloor).
var (
	env        *e2e.Env
	loadAgents string
	tlsFloor   string
)

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "../..", &env, func(e *e2e.Env) error {
		var err error
		if loadAgents, err = e.Build("loadagents", "../loadagents"); err != nil {
			return err
		}
		tlsFloor, err = e.Build("tlsfloor", "../tlsfloor")
		return err
	}))
}

// backEntries returns a balance.bin of n back entries b0 ... b(n-1), each
// with its own password, as loadagents serves them.
func backEntries(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "/~~b%d=pw-%d#:*;\n", i, i)
	}
	return b.String()
}

// report is a line of loadagents' output.
type report struct {
	Agents     int   `json:"agents"`
	Registered int   `json:"registered"`
	Deferred   int64 `json:"deferred"`
	Refused    int64 `json:"refused"`
	Failed     int64 `json:"failed"`
}

// load is a running loadagents.
type load struct {
	*e2e.Process
	t testing.TB
}

// startLoad runs n agents of the names b0 ... b(n-1) against g, from
// source addresses 127.1.0.1 on, with loadagents' further args.
func startLoad(t testing.TB, g *e2e.Gateway, n int, args ...string) *load {
	t.Helper()
	// Each report asks every agent for its status: not too often with many.
	report := "200ms"
	if n > 1000 {
		report = "1s"
	}
	args = append([]string{"-gateway", g.Address(), "-ca", env.CAFile, "-count", strconv.Itoa(n), "-report", report}, args...)
	p := e2e.StartProcess(t, "loadagents", loadAgents, args...)
	return &load{Process: p, t: t}
}

// last returns the last report, or a zero one before the first.
func (l *load) last() report {
	var r report
	lines := l.Log.Lines(`"registered":`)
	if len(lines) > 0 {
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			l.t.Fatalf("loadagents' report %q: %v", lines[len(lines)-1], err)
		}
	}
	return r
}

// waitRegistered waits until all n agents are registered, and returns how
// long it took and the report then.
func (l *load) waitRegistered(n int, within time.Duration) (time.Duration, report) {
	l.t.Helper()
	start := time.Now()
	for {
		r := l.last()
		if r.Agents == n && r.Registered == n {
			return time.Since(start), r
		}
		if l.Exited() {
			l.t.Fatal("loadagents exited")
		}
		if time.Since(start) > within {
			l.t.Fatalf("%d of %d agents registered after %s: %+v", r.Registered, n, within, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
