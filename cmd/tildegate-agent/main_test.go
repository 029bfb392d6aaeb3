package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that the command and the test may use at
// once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCommand runs the command to its end and returns its status and
// output.
func runCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeConfig writes a backbalance.bin into a fresh folder.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backbalance.bin")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVersion(t *testing.T) {
	code, out, _ := runCommand(t, "-version")
	if code != 0 || out != "tildegate-agent devel "+runtime.Version()+"\n" {
		t.Errorf("-version: %d %q", code, out)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{{"-spare", "some"}, {"extra"}, {"-no-such-flag"}, {"-bind", "nowhere"}} {
		if code, _, stderr := runCommand(t, args...); code != 2 || stderr == "" {
			t.Errorf("%v: status %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	path := writeConfig(t, "")
	for _, args := range [][]string{{"-log-format", "xml"}, {"-log-level", "loud"}} {
		if code, _, stderr := runCommand(t, append(args, "-config", path)...); code != 2 || !strings.Contains(stderr, args[0]) {
			t.Errorf("%v: status %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestSpareAccepted: the former -spare flag takes any number, even one
// out of its former range, so that old command lines still start; serve
// then warns that it is ignored.
func TestSpareAccepted(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		given bool
	}{
		{nil, false},
		{[]string{"-spare", "3"}, true},
		{[]string{"-spare", "17"}, true},
		{[]string{"-spare", "-1"}, true},
		{[]string{"-spare", "0"}, true},
	} {
		cfg, err := parseFlags(tc.args, io.Discard)
		if err != nil || cfg.spareGiven != tc.given {
			t.Errorf("%v: given %v, %v; want given %v", tc.args, cfg.spareGiven, err, tc.given)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := defaultConfig(), filepath.Join(filepath.Dir(exe), "backbalance.bin"); got != want {
		t.Errorf("defaultConfig() = %q, want %q", got, want)
	}
}

func TestCheck(t *testing.T) {
	path := writeConfig(t, "# the subserver\nSSL /~~home=s3cret#gw.example.com:8443 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3390;\n/~~two=pw2#gw.example.com:80;\n")
	code, out, stderr := runCommand(t, "-check", "-config", path)
	if code != 0 {
		t.Fatalf("-check: status %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		path + ":2:1: SSL /~~home=****#gw.example.com:8443 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3390;\n",
		`registers "home" with the gateway gw.example.com:8443 over TLS, its certificate verified with the system's roots`,
		"to the local service 127.0.0.1:8080\n    and native RDP through the gateway to the RDP service 10.0.0.5:3390\n",
		path + ":3:1: /~~two=****#gw.example.com:80;\n",
		`registers "two" with the gateway gw.example.com:80 over plain HTTP (no TLS)`,
		"to the local service 127.0.0.1:80 (the default)\n    and native RDP through the gateway to the RDP service 127.0.0.1:3389 (the default)\n",
		"2 entries, all can be served\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "pw2") {
		t.Errorf("-check shows a password:\n%s", out)
	}
	code, out, _ = runCommand(t, "-check", "-insecure", "-config", path)
	if code != 0 || !strings.Contains(out, "without verifying its certificate (-insecure)") {
		t.Errorf("-check -insecure: %d\n%s", code, out)
	}
}

func TestCheckProxyChains(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "")
	t.Setenv("https_proxy", "")
	path := writeConfig(t, "/~~far=pw#gw.example.com:443 -> MYDOMAIN\\myuser1:ntlmpw@10.0.0.1:808 -> myuser2:basicpw@10.0.0.2:808;\n"+
		"/~~open=pw#gw.example.com:443 -> \\u3:pw3x@10.0.0.3:8080 -> 10.0.0.4:3128;\n/~~OK=pw#gw.example.com:443;\n/~~ok=pw#gw.example.com:443;\n")
	code, out, _ := runCommand(t, "-check", "-config", path)
	if code != 1 {
		t.Errorf("-check with a duplicate name: status %d, want 1", code)
	}
	for _, want := range []string{
		path + ":1:1: /~~far=****#gw.example.com:443 -> MYDOMAIN\\myuser1:****@10.0.0.1:808 -> myuser2:****@10.0.0.2:808;\n",
		"    through proxy 1 of 2, 10.0.0.1:808, NTLM as MYDOMAIN\\myuser1\n    through proxy 2 of 2, 10.0.0.2:808, Basic as myuser2\n",
		"    through proxy 1 of 2, 10.0.0.3:8080, NTLM as u3\n    through proxy 2 of 2, 10.0.0.4:3128, no login\n",
		"CANNOT BE SERVED: " + path + ":4:1: entry \"ok\": the name is already used by the entry at " + path + ":3:1",
		"1 of 4 entries cannot be served\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
	for _, pw := range []string{"ntlmpw", "basicpw", "pw3x"} {
		if strings.Contains(out, pw) {
			t.Errorf("-check shows the proxy password %q:\n%s", pw, out)
		}
	}
}

func TestCheckEnvironmentProxy(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://envuser:envpw@10.0.0.9:3128")
	t.Setenv("NO_PROXY", "skip.example.com")
	path := writeConfig(t, "/~~a=pw#gw.example.com:443;\n/~~b=pw#skip.example.com:443;\n/~~c=pw#127.0.0.1:443;\n/~~d=pw#gw.example.com:443 -> 10.0.0.1:808;\n")
	code, out, _ := runCommand(t, "-check", "-config", path)
	if code != 0 {
		t.Errorf("-check: status %d, want 0", code)
	}
	for _, want := range []string{
		"    through the proxy of HTTPS_PROXY, 10.0.0.9:3128, Basic as envuser\n",
		":2:1: /~~b=****#skip.example.com:443;\n    registers \"b\" with the gateway skip.example.com:443 over TLS, its certificate verified with the system's roots\n    directly: HTTPS_PROXY is set, but NO_PROXY excludes",
		":3:1: /~~c=****#127.0.0.1:443;\n    registers \"c\" with the gateway 127.0.0.1:443 over TLS, its certificate verified with the system's roots\n    directly: HTTPS_PROXY is set",
		"    through proxy 1 of 1, 10.0.0.1:808, no login\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "envpw") {
		t.Errorf("-check shows the proxy password:\n%s", out)
	}

	t.Setenv("HTTPS_PROXY", "socks5://envuser:envpw@10.0.0.9:1080")
	code, out, _ = runCommand(t, "-check", "-config", path)
	if code != 1 || !strings.Contains(out, "CANNOT BE SERVED: "+path+":1:1: HTTPS_PROXY: a socks5:// proxy is not supported") ||
		strings.Contains(out, "envpw") {
		t.Errorf("-check with a SOCKS HTTPS_PROXY: status %d\n%s", code, out)
	}
}

func TestCheckParseError(t *testing.T) {
	path := writeConfig(t, "/~~ok=pw#gw.example.com:443;\n/~~bad=pw#gw.example.com:443\n")
	code, _, stderr := runCommand(t, "-check", "-config", path)
	if want := path + ":2:29: found end of file, expected \";\""; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("-check on a broken file: status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	code, _, stderr = runCommand(t, "-config", path)
	if want := path + ":2:29: found end of file"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("start on a broken file: status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	code, _, stderr = runCommand(t, "-config", filepath.Join(t.TempDir(), "missing.bin"))
	if code != 1 || !strings.Contains(stderr, "missing.bin") {
		t.Errorf("start without a file: status %d, stderr %q", code, stderr)
	}
}

func TestCheckEmpty(t *testing.T) {
	code, out, _ := runCommand(t, "-check", "-config", writeConfig(t, "# nothing yet\n"))
	if code != 0 || !strings.Contains(out, "no entries") {
		t.Errorf("-check on an empty file: %d %q", code, out)
	}
}

func TestLogFormats(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger("console", "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("registered")
	line := b.String()
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+Z][\d:]*\tINFO\tregistered\n$`).MatchString(line) {
		t.Errorf("console line %q", line)
	}
	b.Reset()
	if log, err = newLogger("json", "debug", &b); err != nil {
		t.Fatal(err)
	}
	log.Debug("shown")
	var entry map[string]any
	if err := json.Unmarshal(b.Bytes(), &entry); err != nil || entry["msg"] != "shown" || entry["level"] != "debug" {
		t.Errorf("json line %q: %v", b.String(), err)
	}
}
