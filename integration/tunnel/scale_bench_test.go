package tunnel

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/internal/e2e"
)

// BenchmarkAgent10000: one agent process with 10,000 entries against a
// gateway with 10,000 back entries. Reported: the time from the agent's
// start until /ready says every entry is registered (s/registered), the
// agent's and the gateway's resident memory per registered entry against
// an agent with one entry (agent-KiB/entry, gateway-KiB/entry), the time
// of one /status of the agent (s/status), and, for an edit of the agent's
// file that moves one entry to another local service, the time from the
// write to that entry's new registration (s/edit) and, by the agent's log,
// from reading the file (s/apply). The edit must register that entry
// again and no other. Then, with the 10,000 registered, a config reload
// through the admin API (s/gateway-reload) and a balance.bin edit that
// adds a name, from the write to the new name's first answer
// (s/balance-edit), which must keep every registration.
func BenchmarkAgent10000(b *testing.B) {
	const n = 10000
	local := e2e.LocalService(b, "scale").Listener.Addr().String()
	other := e2e.LocalService(b, "other").Listener.Addr().String()
	var registering, status, edit, apply, reload, balanceEdit time.Duration
	var agentKiB, gatewayKiB float64
	for range b.N {
		g := startScaleGateway(b, backEntries(n))
		one := startScaleAgent(b, agentEntries([]int{0}, g.Address(), local, nil))
		one.waitReady(b, time.Minute)
		baseline := processRSS(b, one.Cmd.Process.Pid)
		one.Stop()
		gatewayBefore := processRSS(b, g.Cmd.Process.Pid)

		started := time.Now()
		a := startScaleAgent(b, agentEntries(upTo(n), g.Address(), local, nil))
		a.waitReady(b, 10*time.Minute)
		registering += time.Since(started)
		agentKiB += float64(processRSS(b, a.Cmd.Process.Pid)-baseline) / n
		gatewayKiB += float64(processRSS(b, g.Cmd.Process.Pid)-gatewayBefore) / n
		asked := time.Now()
		before := a.status(b)
		status += time.Since(asked)
		if len(before) != n {
			b.Fatalf("/status lists %d entries, want %d", len(before), n)
		}

		registered := a.Log.Count("\tregistered\t")
		edited := time.Now()
		replaceFile(b, a.path, agentEntries(upTo(n), g.Address(), local, map[int]string{5: other}))
		a.Log.WaitFor(time.Minute, registered, "\tregistered\t")
		edit += time.Since(edited)
		apply += a.reloadTime(b)
		if status, body, err := e2e.Get(env.Client(), g.URL("/~~b5/hello")); err != nil || status != http.StatusOK || body != "hello from other, path /hello, prefix /~~b5" {
			b.Errorf("b5 after the edit: %d %q %v", status, body, err)
		}
		after := a.status(b)
		for name, was := range before {
			now := after[name]
			if name != "b5" && (now.State != agent.StateRegistered || !now.RegisteredSince.Equal(was.RegisteredSince)) {
				b.Errorf("the edit registered %s again: before %+v, after %+v", name, was, now)
			}
		}
		if got := a.Log.Count("\tregistered\t"); got != registered+1 {
			b.Errorf("the edit made %d registrations, want 1", got-registered)
		}

		kept := gatewayAgents(b, g)
		reloading := time.Now()
		if err := g.Reload(strings.ReplaceAll(scaleConfig(g), `respond "gateway"`, `respond "gateway 2"`)); err != nil {
			b.Fatal(err)
		}
		reload += time.Since(reloading)
		edited = time.Now()
		replaceFile(b, g.BalancePath, backEntries(n+1))
		e2e.WaitUntil(b, time.Minute, "the gateway serves the name added to balance.bin", func() bool {
			status, _, err := e2e.Get(env.Client(), g.URL(fmt.Sprintf("/~~b%d/", n)))
			return err == nil && status == http.StatusBadGateway // no agent
		})
		balanceEdit += time.Since(edited)
		checkKept(b, g, kept, upTo(n), "after the gateway's reloads")
		a.Stop()
		g.Stop()
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(per(registering), "s/registered")
	b.ReportMetric(agentKiB/float64(b.N), "agent-KiB/entry")
	b.ReportMetric(gatewayKiB/float64(b.N), "gateway-KiB/entry")
	b.ReportMetric(per(status), "s/status")
	b.ReportMetric(per(edit), "s/edit")
	b.ReportMetric(per(apply), "s/apply")
	b.ReportMetric(per(reload), "s/gateway-reload")
	b.ReportMetric(per(balanceEdit), "s/balance-edit")
}
