package tildegate

import (
	"encoding/json"
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// xcaddyConfig is the part of xcaddy.json this test checks.
type xcaddyConfig struct {
	CaddyVersion string `json:"caddy_version"`
	Dependencies []struct {
		Module  string `json:"module"`
		Replace string `json:"replace"`
	} `json:"dependencies"`
}

// TestXcaddyMatchesGoMod makes sure xcaddy.json builds the Caddy version
// and the module that go.mod names.
func TestXcaddyMatchesGoMod(t *testing.T) {
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod.Module == nil {
		t.Fatal("go.mod has no module line")
	}
	const caddyPath = "github.com/caddyserver/caddy/v2"
	var caddyVersion string
	for _, r := range mod.Require {
		if r.Mod.Path == caddyPath {
			caddyVersion = r.Mod.Version
		}
	}
	if caddyVersion == "" {
		t.Fatalf("go.mod does not require %s", caddyPath)
	}

	data, err = os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg xcaddyConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	if cfg.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json caddy_version is %q, go.mod requires %s %s", cfg.CaddyVersion, caddyPath, caddyVersion)
	}
	if len(cfg.Dependencies) != 1 {
		t.Fatalf("xcaddy.json has %d dependencies, want 1 (this module)", len(cfg.Dependencies))
	}
	dep := cfg.Dependencies[0]
	if dep.Module != mod.Module.Mod.Path {
		t.Errorf("xcaddy.json builds module %q, go.mod's module is %q", dep.Module, mod.Module.Mod.Path)
	}
	if dep.Replace != "." {
		t.Errorf("xcaddy.json replaces %s with %q, want \".\" (this checkout)", dep.Module, dep.Replace)
	}
}
