package cluster

import (
	"fmt"
	"os"
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
		e2e.WaitUntil(t, 10*time.Second, "squid logs "+want, func() bool { return strings.Contains(proxy.accessLog(), want) })
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
	bin := e2e.SquidBinary(t)
	dir, err := os.MkdirTemp("", "tildegate-squid-")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tgcluster%d", os.Getpid())
	s := &squid{addr: "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t)), dir: dir}
	conf := filepath.Join(dir, "squid.conf")
	err = os.WriteFile(conf, []byte(e2e.SquidConfig(dir, s.addr, name, "127.0.0.0/8")+"http_access allow all\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// squid, started as root, runs as its own user: it must write its logs.
	e2e.ChownForSquid(t, dir)
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
