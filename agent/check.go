package agent

import (
	"fmt"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// CheckEntry reports why the agent cannot serve e, or nil when it can.
// The error starts with the entry's file:line:column. Every entry that
// parses can be served today, proxy chains included; the check stays for
// the conditions a parsed entry may not meet.
func CheckEntry(e balancebin.BackEntry) error {
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
