package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestServiceArgs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(filepath.Dir(exe), "backbalance.bin")
	for _, tc := range []struct {
		args, want []string
	}{
		{[]string{"-config", "conf/backbalance.bin", "-insecure"},
			[]string{"-config", filepath.Join(dir, "conf/backbalance.bin"), "-insecure"}},
		{[]string{"-log-level", "debug", "--config=b.bin", "-ca", "ca.pem", "-bind", "127.0.0.2"},
			[]string{"-config", filepath.Join(dir, "b.bin"), "-ca", filepath.Join(dir, "ca.pem"), "-log-level", "debug", "-bind", "127.0.0.2"}},
		{[]string{"-ca=/etc/ca.pem", "-config", "/etc/tildegate/backbalance.bin"},
			[]string{"-config", "/etc/tildegate/backbalance.bin", "-ca", "/etc/ca.pem"}},
		{[]string{"-log-format", "json"},
			[]string{"-config", beside, "-log-format", "json"}},
		// The last -config counts, as for the agent.
		{[]string{"-config", "a.bin", "-config", "b.bin"},
			[]string{"-config", filepath.Join(dir, "b.bin")}},
	} {
		got, cfg, err := serviceArgs(tc.args, io.Discard)
		if err != nil || !slices.Equal(got, tc.want) || cfg.file != tc.want[1] {
			t.Errorf("serviceArgs(%q) = %q (config %q), %v; want %q", tc.args, got, cfg.file, err, tc.want)
		}
	}

	for _, args := range [][]string{{"-check"}, {"-version"}, {"-no-such-flag"}, {"extra"}, {"-config"}} {
		var stderr strings.Builder
		if _, _, err := serviceArgs(args, &stderr); err != errUsage || stderr.Len() == 0 {
			t.Errorf("serviceArgs(%q): %v, stderr %q; want errUsage and a message", args, err, stderr.String())
		}
	}
	// A value that reads as -config cannot be told from the flag.
	if got, _, err := serviceArgs([]string{"-log-level", "-config", "x.bin"}, io.Discard); err == nil {
		t.Errorf("serviceArgs with -log-level -config: %q, want an error", got)
	}
}

func TestTakeFlag(t *testing.T) {
	rest, value, err := takeFlag([]string{"-a", "-root", "/r1", "x", "--root=/r2", "-rootx", "y"}, "root")
	if err != nil || value != "/r2" || !slices.Equal(rest, []string{"-a", "x", "-rootx", "y"}) {
		t.Errorf("takeFlag = %q, %q, %v", rest, value, err)
	}
	if _, _, err := takeFlag([]string{"-root"}, "root"); err == nil {
		t.Error("takeFlag of -root without its value: no error")
	}
}

func TestServiceCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"service"}, 2, "usage: tildegate-agent service install"},
		{[]string{"service", "-h"}, 0, "usage: tildegate-agent service install"},
		{[]string{"service", "restart"}, 2, `unknown service action "restart"`},
		{[]string{"service", "status", "-config", "x"}, 2, `service status takes no argument but -root, not "-config"`},
		{[]string{"service", "start", "-root"}, 2, "flag needs an argument: -root"},
		{[]string{"service", "install", "-check"}, 2, "-check and -version are not for a service"},
	} {
		code, _, stderr := runCommand(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
