// Package proxy tests agents that reach their gateway through HTTP proxies:
// real squid instances on loopback (no login, Basic, and NTLM checked by
// integration/ntlmhelper), the Caddy binary with tildegate as the gateway
// over TLS, and tildegate-agent binaries as subprocesses.
package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bins are the binaries under test, built once for the package.
var bins struct {
	// dir is readable by squid's user: the NTLM helper runs from it.
	dir, caddy, agent, ntlmHelper string
	// caFile trusts certFile, which the gateway serves for 127.0.0.1.
	caFile, certFile, keyFile string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tildegate-proxy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins.dir = dir
	bins.caddy = filepath.Join(dir, "caddy")
	bins.agent = filepath.Join(dir, "tildegate-agent")
	bins.ntlmHelper = filepath.Join(dir, "ntlmhelper")
	for out, pkg := range map[string]string{
		bins.caddy: "../../cmd/caddy", bins.agent: "../../cmd/tildegate-agent", bins.ntlmHelper: "../ntlmhelper",
	} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	if err := writeCertificates(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// writeCertificates makes a CA and a certificate for 127.0.0.1 signed by it.
func writeCertificates(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tildegate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	bins.caFile = filepath.Join(dir, "ca.pem")
	bins.certFile = filepath.Join(dir, "cert.pem")
	bins.keyFile = filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		bins.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		bins.certFile: {Type: "CERTIFICATE", Bytes: leafDER},
		bins.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// freePort returns a TCP port on loopback that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something accepts on addr, or p ends.
func waitPort(t testing.TB, p *process, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s; its output:\n%s", p.log.name, addr, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lineLog collects a process's output and lets tests wait for a line.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
	name  string
	t     testing.TB
}

func newLineLog(t testing.TB, name string) *lineLog {
	return &lineLog{added: make(chan struct{}, 1), name: name, t: t}
}

func (l *lineLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

// count returns how many lines so far contain every one of parts.
func (l *lineLog) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if containsAll(line, parts) {
			n++
		}
	}
	return n
}

// first returns the first line that contains every one of parts.
func (l *lineLog) first(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if containsAll(line, parts) {
			return line
		}
	}
	return ""
}

func containsAll(line string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

// waitFor waits until more than `after` lines contain every one of parts.
func (l *lineLog) waitFor(within time.Duration, after int, parts ...string) {
	l.t.Helper()
	deadline := time.After(within)
	for l.count(parts...) <= after {
		select {
		case <-l.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			l.t.Fatalf("%s did not log %q within %s; its log:\n%s", l.name, parts, within, l.String())
		}
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// process is a started binary whose output goes to a lineLog.
type process struct {
	cmd  *exec.Cmd
	log  *lineLog
	done chan struct{}
}

func startProcess(t testing.TB, name string, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &process{cmd: cmd, log: newLineLog(t, name), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.log.consume(out)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.log)
		}
	})
	return p
}

// stop ends the process with SIGTERM, then SIGKILL if it lingers.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
