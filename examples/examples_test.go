// Package examples holds the example configurations; its test keeps them
// valid as the code changes.
package examples

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/caddyfile/balancebin"

	_ "github.com/tildegate/tildegate"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBalanceFiles(t *testing.T) {
	for _, path := range []string{"balance.bin", filepath.Join("demo", "balance.bin")} {
		entries, err := balancebin.Parse(path, read(t, path))
		if err != nil || len(entries) == 0 {
			t.Errorf("%s: %d entries, %v", path, len(entries), err)
		}
	}
}

func TestBackbalanceFile(t *testing.T) {
	entries, err := balancebin.ParseBack("backbalance.bin", read(t, "backbalance.bin"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for i, err := range agent.CheckEntries(entries) {
		if err != nil {
			t.Errorf("the agent would not serve %s: %v", entries[i].Pos, err)
		}
	}
}

// TestCaddyfiles: the example Caddyfiles adapt without errors or warnings,
// formatted as caddy fmt would.
func TestCaddyfiles(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, path := range []string{"Caddyfile", filepath.Join("demo", "Caddyfile")} {
		_, warnings, err := adapter.Adapt(read(t, path), map[string]any{"filename": path})
		if err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v, warnings %v", path, err, warnings)
		}
	}
}
