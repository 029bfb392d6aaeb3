//go:build unix

package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/testgateway"
)

func TestReloadOnSIGHUP(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw", "office": "pw"})
	path := writeConfig(t, g.Line("home", "pw", ""))
	p := startCommand(t, "-config", path)
	testgateway.Receive(t, g.Controls, "the control connection of home")

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "configuration reloaded", "SIGHUP")
	testgateway.Nothing(t, g.Controls, 200*time.Millisecond, "registration after a reload that changed nothing")
}
