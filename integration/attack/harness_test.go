// Package attack tries to break tildegate's security properties with real
// processes: the Caddy binary with tildegate as the gateway, real
// tildegate-agent processes, and hand-driven peers that send what no
// correct agent would, from many loopback source addresses at once, through
// relays that record, inject and terminate TLS. Each test says what attack
// it tries and what must hold.
package attack

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
