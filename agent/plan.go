package agent

import (
	"slices"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// plan is what Apply does to go from the running entries to the wanted
// ones. Names are compared by their Key.
type plan struct {
	start   []balancebin.BackEntry // names not running yet
	restart []balancebin.BackEntry // names running with other settings
	stop    []string               // keys of names no longer wanted
	keep    []string               // keys of names running as wanted
}

// diff returns the plan from running, by key, to want. Entries of want
// must have distinct keys.
func diff(running map[string]balancebin.BackEntry, want []balancebin.BackEntry) plan {
	var p plan
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		wanted[e.Key()] = true
		old, ok := running[e.Key()]
		switch {
		case !ok:
			p.start = append(p.start, e)
		case !sameEntry(old, e):
			p.restart = append(p.restart, e)
		default:
			p.keep = append(p.keep, e.Key())
		}
	}
	for key := range running {
		if !wanted[key] {
			p.stop = append(p.stop, key)
		}
	}
	slices.Sort(p.stop)
	return p
}

// sameEntry reports whether a and b register the same way: every field but
// the position in the file is equal, so that editing other lines does not
// reconnect an entry.
func sameEntry(a, b balancebin.BackEntry) bool {
	return a.TLS == b.TLS && a.Name == b.Name && a.Password == b.Password &&
		a.Gateway == b.Gateway && slices.Equal(a.Proxies, b.Proxies) &&
		a.Local == b.Local && a.LocalSet == b.LocalSet && a.RDP == b.RDP && a.RDPSet == b.RDPSet
}
