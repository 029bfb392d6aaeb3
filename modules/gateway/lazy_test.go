package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	"github.com/tildegate/tildegate/internal/e2e"
)

// loadWithBalance loads a Caddy config, in this process, whose tildegate
// handler reads a balance.bin with content and applies proxy (JSON, or
// "") to its entries; it returns the provisioned handler.
func loadWithBalance(t *testing.T, content, proxy string) (*Handler, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "balance.bin")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	options := ""
	if proxy != "" {
		options = `, "proxy": ` + proxy
	}
	cfg := fmt.Sprintf(`{
		"admin": {"disabled": true, "config": {"persist": false}},
		"storage": {"module": "file_system", "root": %q},
		"apps": {"http": {"servers": {"s": {
			"listen": ["127.0.0.1:%d"],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [{"handler": "tildegate", "balance_files": [{"path": %q%s}]}]}]
		}}}}
	}`, dir, e2e.FreePort(t), path, options)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	return liveHandlers.list[len(liveHandlers.list)-1], nil
}

// TestEntriesProvisionOnFirstUse: of a balance file's back entries, and
// of its web entries of one TLS mode, one reverse proxy is provisioned when
// the file loads, which proves their options sound; the others on their
// first use. A name costs little until it is used.
func TestEntriesProvisionOnFirstUse(t *testing.T) {
	h, err := loadWithBalance(t, "/~~a=pw#:*;\n/~~b=pw#:*;\n/~~c=pw#:*;\n/~~web=10.0.0.1:80;\n/~~web2=10.0.0.2:80;\n"+
		"/~~web3=10.0.0.3:80;\n/~~web3=10.0.0.4:80;\nSSL /~~secure=10.0.0.5:443;\n", "")
	if err != nil {
		t.Fatal(err)
	}
	routes := h.tables.current.Load().routes
	provisioned := 0
	for _, rt := range routes {
		if rt.ready.Load() != nil {
			provisioned++
		}
	}
	if provisioned != 3 { // one back entry, one plain web entry, one SSL web entry
		t.Errorf("%d of %d routes provisioned at load, want 3", provisioned, len(routes))
	}
	for name, rt := range routes {
		if p, err := rt.handler(); err != nil || p == nil {
			t.Errorf("%s: first use gave %v, %v", name, p, err)
		}
	}
}

// TestBadProxyOptionsRefusedAtLoad: options that cannot provision refuse
// the config when it loads, not on the first request.
func TestBadProxyOptionsRefusedAtLoad(t *testing.T) {
	bad := `{"headers": {"request": {"replace": {"X-A": [{"search_regexp": "(", "replace": "b"}]}}}}`
	_, err := loadWithBalance(t, "/~~a=pw#:*;\n/~~b=pw#:*;\n", bad)
	if err == nil || !strings.Contains(err.Error(), "balance.bin:1:1") {
		t.Errorf("bad proxy options: %v, want the load refused, naming the entry", err)
	}
}

// TestActiveHealthChecksProvisionAtLoad: web entries whose options check
// their servers' health actively provision at once, so that the checks run
// before the first request.
func TestActiveHealthChecksProvisionAtLoad(t *testing.T) {
	h, err := loadWithBalance(t, "/~~web=10.0.0.1:80;\n/~~web2=10.0.0.2:80;\n",
		`{"health_checks": {"active": {"uri": "/health", "interval": "1h"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	for name, rt := range h.tables.current.Load().routes {
		if rt.ready.Load() == nil {
			t.Errorf("%s: not provisioned at load, so its servers are not checked", name)
		}
	}
}
