package proxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// The logins a squid asks for.
const (
	noLogin   = "none"
	basicAuth = "basic"
	ntlmAuth  = "ntlm"
)

// squid is a squid instance on loopback, configured by a test.
type squid struct {
	t          testing.TB
	name       string // the -n service name, unique in the package run
	dir        string // config, logs, password files; owned by squid's user
	conf, port string
	proc       *e2e.Process
}

var squidCount atomic.Int64

// startSquid starts a squid on a free loopback port that asks for auth
// (noLogin, basicAuth or ntlmAuth) and accepts users, each "name:password"
// or for NTLM `DOMAIN\name:password` (DOMAIN may be empty). It allows
// CONNECT to any port of 127.0.0.1 and is stopped when the test ends.
func startSquid(t testing.TB, auth string, users ...string) *squid {
	t.Helper()
	bin := e2e.SquidBinary(t)
	dir, err := os.MkdirTemp("", "tildegate-squid-")
	if err != nil {
		t.Fatal(err)
	}
	s := &squid{
		t:    t,
		name: fmt.Sprintf("tgsquid%dn%d", os.Getpid(), squidCount.Add(1)),
		dir:  dir,
		conf: filepath.Join(dir, "squid.conf"),
		port: strconv.Itoa(e2e.FreePort(t)),
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			for _, f := range []string{"cache.log", "access.log"} {
				b, _ := os.ReadFile(filepath.Join(s.dir, f))
				t.Logf("squid %s %s:\n%s", s.addr(), f, b)
			}
		}
		os.RemoveAll(dir)
	})
	if err := os.WriteFile(s.conf, []byte(s.config(t, auth, users)), 0o644); err != nil {
		t.Fatal(err)
	}
	// squid, started as root, runs as its own user: it must write its logs
	// and read the password files.
	e2e.ChownForSquid(t, dir)
	s.start(bin)
	return s
}

// config is the squid.conf of s.
func (s *squid) config(t testing.TB, auth string, users []string) string {
	var authConf string
	switch auth {
	case noLogin:
		authConf = "http_access allow all\n"
	case basicAuth:
		var htpasswd strings.Builder
		for _, u := range users {
			name, password, _ := strings.Cut(u, ":")
			out, err := exec.Command("openssl", "passwd", "-apr1", password).Output()
			if err != nil {
				t.Fatalf("hashing a password with openssl: %v", err)
			}
			fmt.Fprintf(&htpasswd, "%s:%s\n", name, strings.TrimSpace(string(out)))
		}
		file := filepath.Join(s.dir, "htpasswd")
		if err := os.WriteFile(file, []byte(htpasswd.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		authConf = fmt.Sprintf(`auth_param basic program /usr/lib/squid/basic_ncsa_auth %s
auth_param basic children 4 startup=1 idle=1
auth_param basic realm %s
acl authed proxy_auth REQUIRED
http_access allow authed
`, file, s.name)
	case ntlmAuth:
		file := filepath.Join(s.dir, "ntlm-users")
		if err := os.WriteFile(file, []byte(strings.Join(users, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The helper is stateful: one is busy for each NTLM handshake in
		// progress, and the agent opens several connections at once.
		authConf = fmt.Sprintf(`auth_param ntlm program %s -users %s
auth_param ntlm children 16 startup=2 idle=2
auth_param ntlm keep_alive on
acl authed proxy_auth REQUIRED
http_access allow authed
`, ntlmHelper, file)
	default:
		t.Fatalf("unknown squid auth %q", auth)
	}
	return e2e.SquidConfig(s.dir, s.addr(), s.name, "127.0.0.1/32") + authConf + "http_access deny all\n"
}

// addr is the proxy's address.
func (s *squid) addr() string { return "127.0.0.1:" + s.port }

func (s *squid) start(bin string) {
	s.t.Helper()
	s.proc = e2e.StartProcess(s.t, "squid "+s.addr(), bin, "-N", "-n", s.name, "-f", s.conf)
	e2e.WaitPort(s.t, s.proc, s.addr(), 10*time.Second)
}

// stop ends squid with SIGTERM and waits for it; squid removes its shared
// memory then, and leftovers of an unclean end are removed here.
func (s *squid) stop() {
	if s.proc == nil {
		return
	}
	s.proc.Stop()
	s.proc = nil
	leftovers, _ := filepath.Glob("/dev/shm/" + s.name + "-*")
	for _, f := range leftovers {
		os.Remove(f)
	}
}

// restart stops squid and starts it again on the same port.
func (s *squid) restart() {
	s.t.Helper()
	s.stop()
	s.start(e2e.SquidBinary(s.t))
}

// accessLog is squid's access.log so far: squid writes a CONNECT's line
// when the tunnel closes.
func (s *squid) accessLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
	return string(b)
}

// waitCacheLog waits until squid's cache.log, where its helpers' messages
// go, contains text.
func (s *squid) waitCacheLog(t testing.TB, within time.Duration, text string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(filepath.Join(s.dir, "cache.log"))
		if strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid %s did not log %q within %s; its cache.log:\n%s", s.addr(), text, within, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAccess waits until squid has logged a request with method, URL and
// user (the access.log fields 6 to 8; "-" is no user).
func (s *squid) waitAccess(t testing.TB, within time.Duration, method, url, user string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(s.accessLog(), "\n") {
			if f := strings.Fields(line); len(f) >= 8 && f[5] == method && f[6] == url && f[7] == user {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid %s logged no %s %s by %s within %s; its access.log:\n%s", s.addr(), method, url, user, within, s.accessLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
