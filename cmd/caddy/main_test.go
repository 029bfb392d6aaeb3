package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestListModules builds this command and checks that `caddy list-modules`
// shows tildegate next to Caddy's standard modules.
func TestListModules(t *testing.T) {
	bin := t.TempDir() + "/caddy"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	for _, module := range []string{"http.handlers.tildegate", "http.handlers.reverse_proxy", "tls.issuance.acme"} {
		if !strings.Contains(string(out), module+"\n") {
			t.Errorf("list-modules does not show %s", module)
		}
	}
	version, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(version), "v2.11.9") {
		t.Errorf("caddy version = %q, %v; want v2.11.9", version, err)
	}
}
