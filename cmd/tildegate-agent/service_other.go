//go:build !linux && !windows

package main

import (
	"errors"
	"io"
	"runtime"
)

// newServiceHost fails: services are made for systemd and Windows only.
func newServiceHost(string, io.Writer, io.Writer) (serviceHost, error) {
	return nil, errors.New("service: not supported on " + runtime.GOOS + ", only on Linux with systemd and on Windows")
}
