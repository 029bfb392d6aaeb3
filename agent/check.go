package agent

import (
	"fmt"
	"strings"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// CheckEntry reports why the agent cannot serve e, or nil when it can.
// The error starts with the entry's file:line:column.
func CheckEntry(e balancebin.BackEntry) error {
	if len(e.Proxies) > 0 {
		addrs := make([]string, len(e.Proxies))
		for i, px := range e.Proxies {
			addrs[i] = px.Address.String()
		}
		return fmt.Errorf("%s: entry %q reaches its gateway through HTTP proxies (%s): proxy chains are not supported yet by this agent",
			e.Pos, e.Name, strings.Join(addrs, " -> "))
	}
	return nil
}

// CheckEntries checks each entry as CheckEntry does and also refuses an
// entry whose name (compared without case) an earlier entry already uses,
// since the gateway holds one registration per name. The result has one
// error per entry, nil for those the agent can serve.
func CheckEntries(entries []balancebin.BackEntry) []error {
	errs := make([]error, len(entries))
	first := make(map[string]balancebin.Position, len(entries))
	for i, e := range entries {
		if err := CheckEntry(e); err != nil {
			errs[i] = err
			continue
		}
		if pos, dup := first[e.Key()]; dup {
			errs[i] = fmt.Errorf("%s: entry %q: the name is already used by the entry at %s", e.Pos, e.Name, pos)
			continue
		}
		first[e.Key()] = e.Pos
	}
	return errs
}
