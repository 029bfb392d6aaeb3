package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// SquidBinary finds squid, or fails the test saying how to install it.
func SquidBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("squid"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/squid", "/usr/local/sbin/squid"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("squid not found: install squid (make deps, or apt-get install squid) to run the tests through a proxy")
	return ""
}

// SquidConfig is the start of a squid.conf for tests: squid listens on
// listen, keeps its files in dir under the instance name, caches nothing,
// takes clients from 127.0.0.1 only and connects to allowedDst only (a
// CIDR on loopback). The caller appends its http_access rules.
func SquidConfig(dir, listen, name, allowedDst string) string {
	return fmt.Sprintf(`http_port %[2]s
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
acl lo_dst dst %[4]s
http_access deny !lo_src
http_access deny !lo_dst
`, dir, listen, name, allowedDst)
}

// ChownForSquid gives dir and what it holds to the account squid switches
// to when started as root, so that it can write its logs there; it does
// nothing when the test does not run as root.
func ChownForSquid(t testing.TB, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	var u *user.User
	for _, name := range []string{"proxy", "squid", "nobody"} {
		if found, err := user.Lookup(name); err == nil {
			u = found
			break
		}
	}
	if u == nil {
		t.Fatal("no user proxy, squid or nobody for squid to run as")
	}
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
