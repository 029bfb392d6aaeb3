package agent

import (
	"fmt"
	"sync/atomic"
)

// fileBudget counts the connections the agent holds against the open
// files the process may have, so that a session beyond them is refused
// with a reason the user sees, rather than failing on a dial.
type fileBudget struct {
	limit int64 // the process's limit
	max   int64 // sessions are refused beyond this many open connections
	open  atomic.Int64
}

// newFileBudget budgets for limit open files, keeping a twentieth of them
// (at least 32) for the agent's own files (its log, its configuration, DNS
// lookups, dials in progress). Its control and multiplexed connections
// count against the rest, as its sessions do.
func newFileBudget(limit int) *fileBudget {
	return &fileBudget{limit: int64(limit), max: int64(limit - max(32, limit/20))}
}

// acquire counts one more session's connection unless the budget is
// spent; release gives it back.
func (f *fileBudget) acquire() bool {
	if f.open.Add(1) > f.max {
		f.open.Add(-1)
		return false
	}
	return true
}

// hold counts a connection that the agent needs whatever the budget (a
// control or multiplexed connection): sessions are refused first.
func (f *fileBudget) hold() { f.open.Add(1) }

// release gives back what acquire or hold counted.
func (f *fileBudget) release() { f.open.Add(-1) }

// refusal says why a session was refused.
func (f *fileBudget) refusal() string {
	return fmt.Sprintf("the agent holds %d connections, near its limit of %d open files", f.open.Load(), f.limit)
}
