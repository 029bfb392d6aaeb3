//go:build !linux

package main

// hostManager returns nil: only systemd, on Linux, names itself in the
// environment. The Windows service control manager hands its manager to
// serve in the context (see controlLoop).
func hostManager() (manager, error) { return nil, nil }
