package tunnel

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
)

// backEntries returns a balance.bin of n back entries b0 ... b(n-1), each
// with its own password.
func backEntries(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "/~~b%d=pw-%d#:*;\n", i, i)
	}
	return b.String()
}

// BenchmarkStartup10000: the time from starting the gateway with 10,000
// back entries to its first answer for the last of them (502: no agent
// yet), reported as s/startup, and the gateway's resident memory per
// configured name then, against a gateway with one name, as KiB/name.
func BenchmarkStartup10000(b *testing.B) {
	const names = 10000
	client := env.Client()
	empty := e2e.StartGateway(b, env, backEntries(1))
	waitServed502(b, client, empty, 0)
	baseline := processRSS(b, empty.Cmd.Process.Pid)
	empty.Stop()
	var total time.Duration
	var perName float64
	for range b.N {
		started := time.Now()
		g := e2e.StartGateway(b, env, backEntries(names))
		waitServed502(b, client, g, names-1)
		total += time.Since(started)
		perName += float64(processRSS(b, g.Cmd.Process.Pid)-baseline) / names
		g.Stop()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/startup")
	b.ReportMetric(perName/float64(b.N), "KiB/name")
}

// waitServed502 waits until g answers 502 (no agent) for back entry
// number i.
func waitServed502(b *testing.B, client *http.Client, g *e2e.Gateway, i int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := client.Get(g.URL(fmt.Sprintf("/~~b%d/", i)))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusBadGateway {
				return
			}
			b.Fatalf("the entry answers %s, want 502 before an agent connects", res.Status)
		}
		if time.Now().After(deadline) {
			b.Fatalf("the gateway did not answer within a minute: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkHandshakes: control handshakes per second that the gateway
// completes, over TLS and over plain HTTP, from 16 loopback addresses at
// once (so that the per-address limit on handshakes in flight is not what
// is measured), each cycling through names of its own, so that a name is
// free again when it comes back; with the gateway's CPU time per
// handshake.
func BenchmarkHandshakes(b *testing.B) {
	const clients, namesPerClient = 16, 64
	g := e2e.StartGateway(b, env, backEntries(clients*namesPerClient))
	for _, tlsOn := range []bool{true, false} {
		b.Run(map[bool]string{true: "tls", false: "plain"}[tlsOn], func(b *testing.B) {
			addr := g.PlainAddress()
			if tlsOn {
				addr = g.Address()
			}
			var next atomic.Int32
			cpu := processCPU(b, g.Cmd.Process.Pid)
			b.SetParallelism(clients / 2) // GOMAXPROCS is 2 here
			b.ResetTimer()
			started := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				id := int(next.Add(1)-1) % clients
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(id+1))}}
				for i := 0; pb.Next(); i++ {
					n := id + clients*(i%namesPerClient)
					if err := handshakeOnce(&d, addr, tlsOn, fmt.Sprintf("b%d", n), fmt.Sprintf("pw-%d", n)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(started)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "handshakes/s")
			b.ReportMetric(float64((processCPU(b, g.Cmd.Process.Pid)-cpu).Microseconds())/float64(b.N), "gateway-µs-CPU/handshake")
		})
	}
}

// handshakeOnce registers name and closes the connection at once.
func handshakeOnce(d *net.Dialer, addr string, tlsOn bool, name, password string) error {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var cs *tls.ConnectionState
	if tlsOn {
		cfg := env.TLSConfig().Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		state := tc.ConnectionState()
		c, cs = tc, &state
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = e2e.Handshake(c, cs, addr, name, password, nil)
	return err
}

// processCPU is the user and system time a process has used so far.
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
