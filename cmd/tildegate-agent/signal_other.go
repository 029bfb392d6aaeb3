//go:build !unix

package main

import (
	"os"
	"syscall"
)

// stopSignals end the agent; on Windows SIGTERM stands for the console's
// close, logoff and shutdown events.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// notifyReload does nothing: this system has no reload signal, and the
// agent reloads when its configuration file changes.
func notifyReload(chan<- os.Signal) {}
