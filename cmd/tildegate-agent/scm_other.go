//go:build !windows

package main

// runByServiceManager returns false: only Windows starts the agent through
// a service control loop; systemd runs it as it is.
func runByServiceManager() (int, bool) { return 0, false }
