package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// findTool finds the command name of the Debian package pkg, also in the
// sbin folders, which are often missing from a normal user's PATH.
func findTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: run make test (or make deps), which installs the package %s", name, pkg)
}

// mustFindTool is findTool that fails the test.
func mustFindTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := findTool(name, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// StartXvfb starts a virtual X display, which xfreerdp and the shadow server
// need, and returns its DISPLAY value. Xvfb picks a free display number
// itself. -noreset keeps it from resetting when its last client leaves,
// which would refuse the next client for a moment.
func StartXvfb(t testing.TB) string {
	t.Helper()
	bin := mustFindTool(t, "Xvfb", "xvfb")
	p := StartProcess(t, "Xvfb", bin, "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// With -displayfd 1 the number comes alone on a line once the
		// display accepts clients.
		for _, line := range strings.Split(p.Log.String(), "\n") {
			if n, err := strconv.Atoi(line); err == nil {
				return fmt.Sprintf(":%d", n)
			}
		}
		if p.Exited() {
			t.Fatalf("Xvfb exited before opening a display; its output:\n%s", p.Log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Xvfb opened no display within 10s; its output:\n%s", p.Log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RDPServer is an RDP server on loopback, stopped when the test ends.
type RDPServer struct {
	*Process
	Port int
}

// Address is the server's address, for xfreerdp's /v:.
func (s *RDPServer) Address() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// xrdpSockets makes xrdp's socket folders under /run once per test binary.
var xrdpSockets = sync.OnceValues(func() ([]byte, error) {
	return exec.Command("sh", "/usr/share/xrdp/socksetup").CombinedOutput()
})

// StartXrdp starts xrdp, which needs root, on a free loopback port with
// env's certificate for 127.0.0.1. It negotiates TLS and shows its login
// screen to any client, named by a cookie (/u:) or a routing token
// (/load-balance-info:); its log goes to the process log. A client that
// sends a password, even an empty one, makes it then try the session
// manager, which is not running: that fails in the background and changes
// nothing for the client.
func StartXrdp(t testing.TB, env *Env) *RDPServer {
	t.Helper()
	bin := mustFindTool(t, "xrdp", "xrdp")
	if out, err := xrdpSockets(); err != nil {
		t.Fatalf("xrdp's socksetup (run as root): %v\n%s", err, out)
	}
	base, err := os.ReadFile("/etc/xrdp/xrdp.ini")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &RDPServer{Port: FreePort(t)}
	ini, err := rewriteINI(string(base), map[string][]string{
		"Globals": {
			"port=tcp://" + s.Address(),
			"fork=false",
			"certificate=" + env.CertFile,
			"key_file=" + env.KeyFile,
		},
		"Logging": {
			"LogFile=" + filepath.Join(dir, "xrdp.log"),
			"EnableSyslog=false",
			"EnableConsole=true",
			"ConsoleLevel=INFO",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "xrdp.ini")
	if err := os.WriteFile(config, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	// stdbuf makes xrdp's stdout, its log, line-buffered: lines come when
	// logged.
	s.Process = StartProcess(t, "xrdp", "stdbuf", "-oL", bin, "-n", "-c", config)
	WaitPort(t, s.Process, s.Address(), 10*time.Second)
	return s
}

// rewriteINI sets keys in the sections of an ini file: settings maps a
// section to its "key=value" lines, which replace the section's lines for
// those keys, commented out or not, right after the section's header.
func rewriteINI(ini string, settings map[string][]string) (string, error) {
	var out []string
	seen := map[string]bool{}
	section := ""
	for _, line := range strings.Split(ini, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]") {
			section = trimmed[1 : len(trimmed)-1]
			seen[section] = true
			out = append(out, line)
			out = append(out, settings[section]...)
			continue
		}
		if key, _, ok := strings.Cut(strings.TrimLeft(trimmed, "#;"), "="); ok && setsKey(settings[section], key) {
			continue
		}
		out = append(out, line)
	}
	for section := range settings {
		if !seen[section] {
			return "", fmt.Errorf("ini file has no [%s] section", section)
		}
	}
	return strings.Join(out, "\n"), nil
}

// setsKey reports whether one of the "key=value" lines sets key.
func setsKey(lines []string, key string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, key+"=") {
			return true
		}
	}
	return false
}

// shadowIdentity is the certificate and RSA key of every shadow server of a
// test binary, by file name. The shadow server would otherwise make its own
// on every start, which takes more than a second.
var shadowIdentity = sync.OnceValues(func() (map[string][]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"shadow.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"shadow.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	}, nil
})

// StartShadow starts freerdp-shadow-cli, which shares the X display, on a
// free loopback port. It takes only NLA and only user with password. It
// rejects a raw routing token (xfreerdp's /load-balance-info:) sent to it
// directly; through the gateway, which removes the token, that is how a
// client names its route, as /u: carries the NLA user.
func StartShadow(t testing.TB, display, user, password string) *RDPServer {
	t.Helper()
	bin := mustFindTool(t, "freerdp-shadow-cli", "freerdp2-shadow-x11")
	hash := mustFindTool(t, "winpr-hash", "winpr-utils")
	dir := t.TempDir()
	sam, err := exec.Command(hash, "-u", user, "-p", password, "-f", "sam").Output()
	if err != nil {
		t.Fatalf("winpr-hash: %v", err)
	}
	samFile := filepath.Join(dir, "sam.txt")
	if err := os.WriteFile(samFile, sam, 0o600); err != nil {
		t.Fatal(err)
	}
	identity, err := shadowIdentity()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	certDir := filepath.Join(config, "freerdp", "shadow")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range identity {
		if err := os.WriteFile(filepath.Join(certDir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &RDPServer{Port: FreePort(t)}
	// env overrides StartProcess's HOME and XDG_CONFIG_HOME, where the
	// server looks for its certificate, and sets the display. stdbuf makes
	// stdout line-buffered, so that log lines come when logged and stay
	// whole between stderr's.
	s.Process = StartProcess(t, "shadow", "env", "HOME="+dir, "XDG_CONFIG_HOME="+config, "DISPLAY="+display,
		"stdbuf", "-oL", bin, fmt.Sprintf("/port:%d", s.Port), "/bind-address:127.0.0.1",
		"+auth", "/sec:nla", "/sam-file:"+samFile)
	WaitPort(t, s.Process, s.Address(), 10*time.Second)
	return s
}

// xfreerdpTimeout bounds one xfreerdp run; a connection takes about 2s.
const xfreerdpTimeout = 20 * time.Second

// RunXfreerdp runs xfreerdp on display with args such as "/v:"+addr and
// "/u:name", and with /cert:ignore +auth-only /log-level:DEBUG: it goes
// through the whole connection sequence without opening a window and exits
// 0 on success, 147 when the connection failed or the server closed it (an
// unknown route, a wrong NLA password). +auth-only needs a password, so an
// empty /p: is added if args have none. FreeRDP may retry a failed
// connection, so a failure can make two connections. It returns the exit code and FreeRDP's log, followed by
// anything else the client printed. A run longer than 20s is killed and
// fails the test. Safe to call from several goroutines.
func RunXfreerdp(t testing.TB, display string, args ...string) (int, string) {
	t.Helper()
	bin, err := findTool("xfreerdp", "freerdp2-x11")
	if err != nil {
		t.Error(err)
		return -1, ""
	}
	args = append([]string{"/cert:ignore", "+auth-only", "/log-level:DEBUG"}, args...)
	if !hasPassword(args) {
		args = append(args, "/p:")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), xfreerdpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// FreeRDP logs to a file: on the console it writes debug lines to a
	// block-buffered stdout and errors to stderr, which cut into each other.
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "HOME="+dir, "XDG_CONFIG_HOME="+dir,
		"WLOG_APPENDER=FILE", "WLOG_FILEAPPENDER_OUTPUT_FILE_PATH="+dir, "WLOG_FILEAPPENDER_OUTPUT_FILE_NAME=xfreerdp.log")
	var printed bytes.Buffer
	cmd.Stdout = &printed
	cmd.Stderr = &printed
	err = cmd.Run()
	logged, _ := os.ReadFile(filepath.Join(dir, "xfreerdp.log"))
	output := string(logged) + printed.String()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("xfreerdp %s: killed after %s; its output:\n%s", strings.Join(args, " "), xfreerdpTimeout, output)
		return -1, output
	case errors.As(err, &exit):
		return exit.ExitCode(), output
	case err != nil:
		t.Errorf("xfreerdp: %v", err)
		return -1, output
	}
	return 0, output
}

// hasPassword reports whether xfreerdp's args give a password.
func hasPassword(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "/p:") {
			return true
		}
	}
	return false
}

// RDPActive reports whether xfreerdp's output shows that the connection
// reached the active state, the end of the connection sequence (security,
// licensing, capabilities, finalization). With +auth-only, xfreerdp then
// logs "Authentication only, exit status 0" and disconnects.
func RDPActive(output string) bool {
	return strings.Contains(output, "--> CONNECTION_STATE_ACTIVE")
}

var negotiatedSecurity = regexp.MustCompile(`Negotiated (\S+) security`)

// RDPSecurity returns the security protocol that xfreerdp's output shows
// the client and server agreed on: "TLS" with xrdp, "NLA" with the shadow
// server (before the password is checked), "RDP", or "" if none.
func RDPSecurity(output string) string {
	if m := negotiatedSecurity.FindStringSubmatch(output); m != nil {
		return m[1]
	}
	return ""
}

// StartXfreerdp opens a lasting RDP session on display with args such as
// "/v:"+addr, as a user would: no +auth-only, so it stays connected until
// it is stopped. Its log shows the states (/log-level:DEBUG).
func StartXfreerdp(t testing.TB, display string, args ...string) *Process {
	t.Helper()
	bin := mustFindTool(t, "xfreerdp", "freerdp2-x11")
	args = append([]string{"DISPLAY=" + display, "stdbuf", "-oL", bin, "/cert:ignore", "/log-level:DEBUG"}, args...)
	return StartProcess(t, "xfreerdp", "env", args...)
}

// RDPEcho runs one native RDP session to name through the gateway at addr,
// whose RDP service for name echoes: the Connection Request (which the
// gateway passes on without its routing cookie), then n bytes. It returns
// the bytes the client sent.
func RDPEcho(t testing.TB, addr, name string, n int) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	cookie := "Cookie: mstshash=/~~" + name + "\r\n"
	cr := RDPConnectionRequest(cookie)
	if _, err := c.Write(cr); err != nil {
		t.Fatal(err)
	}
	forwarded := len(cr) - len(cookie)
	if _, err := io.ReadFull(c, make([]byte, forwarded)); err != nil {
		t.Fatalf("%s: the RDP service's echo of the request: %v", addr, err)
	}
	payload := bytes.Repeat([]byte("r"), n)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("%s: the RDP service's echo: %v", addr, err)
	}
	return forwarded + n
}
