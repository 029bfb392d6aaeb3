// Package tunnel tests back connections end to end with real processes:
// the Caddy binary with tildegate as the gateway, tildegate-agent binaries
// as subprocesses, real TLS, and local services on loopback.
package tunnel

import (
	"fmt"
	"os"
	"testing"

	"github.com/tildegate/tildegate/internal/e2e"
)

// env has the binaries under test, built once for the package.
var env *e2e.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	e, err := e2e.NewEnv("../..")
	if e != nil {
		defer os.RemoveAll(e.Dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = e
	return m.Run()
}
