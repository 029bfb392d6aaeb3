// Package cluster tests several gateways working together with real
// processes: Caddy binaries with tildegate that share Caddy's storage (and
// with it the internal CA of their host name), each on its own loopback
// address and with its own instance id, a DNS server that answers the
// gateways' host name with their addresses, and tildegate-agent binaries
// that find the gateways through it and register on each.
package cluster

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
