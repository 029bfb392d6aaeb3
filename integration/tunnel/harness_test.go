// Package tunnel tests back connections end to end with real processes:
// the Caddy binary with tildegate as the gateway, tildegate-agent binaries
// as subprocesses, real TLS, and local services on loopback.
package tunnel

import (
	"os"
	"testing"

	"github.com/tildegate/tildegate/internal/e2e"
)

// env has the binaries under test, built once for the package.
var env *e2e.Env

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "../..", &env, nil))
}
