package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// systemdAnalyze runs systemd-analyze with args and returns its stdout and
// stderr.
func systemdAnalyze(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing: install systemd (make deps)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("systemd-analyze", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// runBinary runs bin with args in the folder dir and returns its status,
// stdout and stderr.
func runBinary(t *testing.T, bin, dir string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestSystemdService installs the built agent as a systemd unit into a
// root folder of the test, checks the unit with systemd-analyze, and
// removes it.
func TestSystemdService(t *testing.T) {
	bin := agentBinary(t)
	root := t.TempDir()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "conf dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "conf dir", "backbalance.bin")
	if err := os.WriteFile(config, []byte("/~~home=pw#127.0.0.1:1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runBinary(t, bin, dir, "service", "install", "-config", "conf dir/backbalance.bin", "-root", root, "-log-level", "debug")
	unitPath := filepath.Join(root, "etc/systemd/system/tildegate-agent.service")
	if code != 0 || out != "wrote "+unitPath+"\n"+
		"the unit is for the system in "+root+"; once it runs, run there:\n"+
		"    systemctl daemon-reload\n    systemctl enable --now tildegate-agent.service\n" {
		t.Fatalf("install: status %d\n%s%s", code, out, stderr)
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nType=notify\n",
		"\nExecStart=" + bin + ` -config "` + config + `" -log-level debug` + "\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nRestart=on-failure\n",
		"\nWatchdogSec=30s\n",
		"\nProtectSystem=strict\n",
		"\nProtectHome=yes\n",
		// The executable and the configuration lie in the test's /tmp,
		// which the unit's PrivateTmp hides.
		"\nBindReadOnlyPaths=" + bin + ` "` + filepath.Dir(config) + `"` + "\n",
		"\nCapabilityBoundingSet=\n",
		"\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q:\n%s", want, unit)
		}
	}

	stdout, stderr, err := systemdAnalyze(t, "verify", unitPath)
	if err != nil || stderr != "" {
		t.Errorf("systemd-analyze verify: %v\n%s%s", err, stdout, stderr)
	}
	stdout, stderr, err = systemdAnalyze(t, "security", "--offline=true", unitPath)
	m := regexp.MustCompile(`Overall exposure level for tildegate-agent.service: (\d+\.\d+)`).FindStringSubmatch(stdout)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("systemd-analyze security --offline=true: exposure %s", m[1])
	if score, _ := strconv.ParseFloat(m[1], 64); score > 2.0 {
		t.Errorf("exposure %s, want at most 2.0:\n%s", m[1], stdout)
	}

	if code, _, stderr := runBinary(t, bin, dir, "service", "install", "-config", config, "-root", root); code != 1 || !strings.Contains(stderr, "exists already") {
		t.Errorf("a second install: status %d, stderr %q", code, stderr)
	}
	code, out, _ = runBinary(t, bin, dir, "service", "status", "-root", root)
	if code != 0 || !strings.HasPrefix(out, "tildegate-agent: installed ("+unitPath+")\n") || !strings.Contains(out, "systemctl status --no-pager tildegate-agent.service\n") {
		t.Errorf("status: %d\n%s", code, out)
	}
	for _, action := range []string{"start", "stop"} {
		if code, out, _ := runBinary(t, bin, dir, "service", action, "-root", root); code != 0 || !strings.HasSuffix(out, "    systemctl "+action+" tildegate-agent.service\n") {
			t.Errorf("%s: %d\n%s", action, code, out)
		}
	}

	// As `systemctl enable` would have linked it.
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.Mkdir(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(unitPath, filepath.Join(wants, unitName)); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runBinary(t, bin, dir, "service", "uninstall", "-root", root)
	if code != 0 || !strings.HasPrefix(out, "removed "+unitPath+"\n") || !strings.HasSuffix(out, "    systemctl daemon-reload\n") {
		t.Errorf("uninstall: %d\n%s", code, out)
	}
	if entries, err := os.ReadDir(wants); err != nil || len(entries) > 0 {
		t.Errorf("after uninstall %s holds %v (%v)", wants, entries, err)
	}
	if _, err := os.Lstat(unitPath); !os.IsNotExist(err) {
		t.Errorf("the unit is still there after uninstall: %v", err)
	}
	if code, out, _ := runBinary(t, bin, dir, "service", "status", "-root", root); code != 0 || out != "tildegate-agent: not installed (no "+unitPath+")\n" {
		t.Errorf("status after uninstall: %d %q", code, out)
	}
	if code, _, stderr := runBinary(t, bin, dir, "service", "uninstall", "-root", root); code != 1 || !strings.Contains(stderr, "the service is not installed") {
		t.Errorf("a second uninstall: %d %q", code, stderr)
	}
}

func TestServiceInstallNeedsConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.bin")
	code, _, stderr := runCommand(t, "service", "install", "-root", t.TempDir(), "-config", missing)
	if code != 1 || !strings.Contains(stderr, "the service would not start: reading the configuration: ") {
		t.Errorf("install with a missing configuration: status %d, stderr %q", code, stderr)
	}
}

// TestSystemdUnitPaths: what the agent reads from a home folder is put
// back in place under ProtectHome=tmpfs; the rest of the system is seen,
// read-only, through ProtectSystem=strict.
func TestSystemdUnitPaths(t *testing.T) {
	unit, err := systemdUnit("/usr/local/bin/tildegate-agent", []string{"-config", "/home/me/tg/backbalance.bin"},
		config{file: "/home/me/tg/backbalance.bin", caFile: "/etc/tildegate/ca.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "\nProtectHome=tmpfs\nBindReadOnlyPaths=/home/me/tg\n") {
		t.Errorf("unit for a configuration in a home folder:\n%s", unit)
	}
	unit, err = systemdUnit("/usr/bin/tildegate-agent", []string{"-config", "/etc/tildegate/backbalance.bin"},
		config{file: "/etc/tildegate/backbalance.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "\nProtectHome=yes\nPrivateTmp=yes\n") || strings.Contains(unit, "BindReadOnlyPaths") {
		t.Errorf("unit for a configuration in /etc:\n%s", unit)
	}
}

func TestSystemdWord(t *testing.T) {
	for _, tc := range []struct {
		in, exec, path string
	}{
		{"/usr/bin/tildegate-agent", "/usr/bin/tildegate-agent", "/usr/bin/tildegate-agent"},
		{"-log-level", "-log-level", "-log-level"},
		{"/srv/a b/backbalance.bin", `"/srv/a b/backbalance.bin"`, `"/srv/a b/backbalance.bin"`},
		{"/srv/100%/$HOME", "/srv/100%%/$$HOME", "/srv/100%%/$HOME"},
		{`/srv/"q"\x`, `"/srv/\"q\"\\x"`, `"/srv/\"q\"\\x"`},
		{"/srv/a:b", `"/srv/a:b"`, `"/srv/a:b"`},
		{"", `""`, `""`},
	} {
		if got, err := systemdWord(tc.in, true); got != tc.exec || err != nil {
			t.Errorf("systemdWord(%q, true) = %q, %v; want %q", tc.in, got, err, tc.exec)
		}
		if got, err := systemdWord(tc.in, false); got != tc.path || err != nil {
			t.Errorf("systemdWord(%q, false) = %q, %v; want %q", tc.in, got, err, tc.path)
		}
	}
	if _, err := systemdWord("/srv/a\nb", true); err == nil {
		t.Error("a newline goes into a unit")
	}
}
