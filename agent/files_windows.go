//go:build windows

package agent

// openFileLimit returns the connections the agent budgets for: Windows
// sets no per-process limit of open sockets, so this one only guards
// against runaway use.
func openFileLimit() int { return 1 << 20 }
