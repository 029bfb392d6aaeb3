// Package examples holds the example configurations; its test keeps them
// valid as the code changes.
package examples

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/caddyfile/balancebin"

	_ "github.com/tildegate/tildegate"
)

var update = flag.Bool("update", false, "rewrite each example Caddyfile's golden JSON (Caddyfile.json beside it) with what it adapts to")

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBalanceFiles(t *testing.T) {
	for _, path := range []string{"balance.bin", filepath.Join("demo", "balance.bin"), filepath.Join("production", "balance.bin"), filepath.Join("cluster", "balance.bin")} {
		entries, err := balancebin.Parse(path, read(t, path))
		if err != nil || len(entries) == 0 {
			t.Errorf("%s: %d entries, %v", path, len(entries), err)
		}
	}
}

func TestBackbalanceFiles(t *testing.T) {
	for _, path := range []string{"backbalance.bin", filepath.Join("demo", "backbalance.bin"), filepath.Join("cluster", "backbalance.bin")} {
		entries, err := balancebin.ParseBack(path, read(t, path))
		if err != nil || len(entries) == 0 {
			t.Errorf("%s: %d entries, %v", path, len(entries), err)
			continue
		}
		for i, err := range agent.CheckEntries(entries) {
			if err != nil {
				t.Errorf("the agent would not serve %s: %v", entries[i].Pos, err)
			}
		}
	}
}

// TestCaddyfiles: the example Caddyfiles adapt without errors or warnings
// to the JSON of the Caddyfile.json beside each, so that a change in what
// an example means shows in review. `go test ./examples -update` rewrites
// the JSON files.
// examples/cluster/Caddyfile is adapted as the first gateway's, with
// INSTANCE_ID=gw1.
func TestCaddyfiles(t *testing.T) {
	t.Setenv("INSTANCE_ID", "gw1")
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, path := range []string{"Caddyfile", filepath.Join("demo", "Caddyfile"), filepath.Join("production", "Caddyfile"), filepath.Join("cluster", "Caddyfile")} {
		adapted, warnings, err := adapter.Adapt(read(t, path), map[string]any{"filename": path})
		if err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v, warnings %v", path, err, warnings)
			continue
		}
		var got bytes.Buffer
		if err := json.Indent(&got, adapted, "", "\t"); err != nil {
			t.Fatal(err)
		}
		got.WriteByte('\n')
		golden := path + ".json"
		if *update {
			if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if want := read(t, golden); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s adapts to other JSON than %s (if the change is meant, run go test ./examples -update):\n%s",
				path, golden, lineDiff(string(want), got.String()))
		}
	}
}

// lineDiff shows how the lines of b differ from those of a: the lines
// only in a with "-", those only in b with "+", each with its line number
// in its file, along a longest common subsequence of lines.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// lcs[i][j] is the length of a longest common subsequence of x[i:]
	// and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case j == len(y) || i < len(x) && lcs[i+1][j] >= lcs[i][j+1]:
			fmt.Fprintf(&out, "-%d: %s\n", i+1, x[i])
			i++
		default:
			fmt.Fprintf(&out, "+%d: %s\n", j+1, y[j])
			j++
		}
	}
	return out.String()
}

// TestClusterNeedsInstanceID: examples/cluster/Caddyfile does not adapt
// without INSTANCE_ID, so that no gateway of a cluster starts with an id
// that is not its own.
func TestClusterNeedsInstanceID(t *testing.T) {
	t.Setenv("INSTANCE_ID", "")
	path := filepath.Join("cluster", "Caddyfile")
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(read(t, path), map[string]any{"filename": path}); err == nil || !strings.Contains(err.Error(), "instance_id") {
		t.Errorf("%s adapts without INSTANCE_ID: %v", path, err)
	}
}
