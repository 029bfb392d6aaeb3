//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// stopSignals end the agent.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// notifyReload sends the reload signal, SIGHUP, to c.
func notifyReload(c chan<- os.Signal) { signal.Notify(c, syscall.SIGHUP) }
