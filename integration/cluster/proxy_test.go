package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// TestThroughProxy: an agent behind an HTTP proxy (squid, no login)
// resolves the gateways' name itself and CONNECTs to each address: it
// registers on all three gateways, each serves requests through it, and
// squid logged a CONNECT to each address.
func TestThroughProxy(t *testing.T) {
	c, d := threeGateways(t)
	proxy := startSquid(t)
	local := e2e.LocalService(t, "home").Listener.Addr().String()
	a := startAgent(t, c, d, entry(c, "home", local, "", proxy.addr))
	waitAllConnected(t, c, "home", 15*time.Second)
	a.waitReady(t, 5*time.Second)
	for _, g := range c.Gateways {
		serves(t, g, "home")
	}
	// squid logs a CONNECT when its tunnel closes: when the agent ends.
	a.Stop()
	for _, g := range c.Gateways {
		want := "CONNECT " + g.Address()
		waitUntil(t, 10*time.Second, "squid logs "+want, func() bool { return strings.Contains(proxy.accessLog(), want) })
	}
	if log := proxy.accessLog(); strings.Contains(log, "CONNECT "+host) {
		t.Errorf("the agent asked squid to CONNECT to the name, not to the addresses:\n%s", log)
	}
}

// squid is a squid on loopback that asks for no login and allows CONNECT
// from 127.0.0.1 to any loopback address.
type squid struct {
	addr, dir string
}

// startSquid starts a squid on a free loopback port; it is stopped when
// the test ends.
func startSquid(t testing.TB) *squid {
	t.Helper()
	bin := squidBinary(t)
	dir, err := os.MkdirTemp("", "tildegate-squid-")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tgcluster%d", os.Getpid())
	s := &squid{addr: "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t)), dir: dir}
	conf := filepath.Join(dir, "squid.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`http_port %[2]s
visible_hostname %[3]s
pid_filename %[1]s/squid.pid
cache_log %[1]s/cache.log
access_log stdio:%[1]s/access.log
cache_store_log none
coredump_dir %[1]s
cache deny all
cache_mem 8 MB
pinger_enable off
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
udp_outgoing_address 127.0.0.1
shutdown_lifetime 0 seconds
acl lo_src src 127.0.0.1/32
acl lo_dst dst 127.0.0.0/8
http_access deny !lo_src
http_access deny !lo_dst
http_access allow all
`, dir, s.addr, name)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// squid, started as root, runs as its own user: it must write its logs.
	if os.Geteuid() == 0 {
		chownAll(t, dir, squidUser(t))
	}
	p := e2e.StartProcess(t, "squid", bin, "-N", "-n", name, "-f", conf)
	t.Cleanup(func() {
		p.Stop()
		leftovers, _ := filepath.Glob("/dev/shm/" + name + "-*")
		for _, f := range leftovers {
			os.Remove(f)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Logf("squid's cache.log:\n%s\naccess.log:\n%s", b, s.accessLog())
		}
		os.RemoveAll(dir)
	})
	e2e.WaitPort(t, p, s.addr, 10*time.Second)
	return s
}

// accessLog is squid's access.log so far.
func (s *squid) accessLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
	return string(b)
}

// squidBinary finds squid, or fails the test.
func squidBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("squid"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/squid", "/usr/local/sbin/squid"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("squid not found: run make deps (or apt-get install squid) to run the cluster tests through a proxy")
	return ""
}

// squidUser is the account squid switches to when started as root.
func squidUser(t testing.TB) *user.User {
	t.Helper()
	for _, name := range []string{"proxy", "squid", "nobody"} {
		if u, err := user.Lookup(name); err == nil {
			return u
		}
	}
	t.Fatal("no user proxy, squid or nobody for squid to run as")
	return nil
}

// chownAll gives dir and what it holds to u.
func chownAll(t testing.TB, dir string, u *user.User) {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
