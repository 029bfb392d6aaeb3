// Package proxy tests agents that reach their gateway through HTTP proxies:
// real squid instances on loopback (no login, Basic, and NTLM checked by
// integration/ntlmhelper), the Caddy binary with tildegate as the gateway
// over TLS, and tildegate-agent binaries as subprocesses.
package proxy

import (
	"os"
	"testing"

	"github.com/tildegate/tildegate/internal/e2e"
)

// env has the binaries under test, built once for the package, in a folder
// squid's user can read: the NTLM helper runs from it.
var env *e2e.Env

// ntlmHelper is the NTLM authentication helper squid runs.
var ntlmHelper string

func TestMain(m *testing.M) {
	os.Exit(e2e.Main(m, "../..", &env, func(e *e2e.Env) error {
		var err error
		ntlmHelper, err = e.Build("ntlmhelper", "../ntlmhelper")
		return err
	}))
}
