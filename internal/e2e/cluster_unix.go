//go:build unix

package e2e

import "syscall"

// Pause stops the gateway with SIGSTOP: it keeps its connections open but
// answers nothing, as a hung host does. Resume lets it go on; the test's
// end does too.
func (g *ClusterGateway) Pause() {
	g.c.t.Helper()
	if err := g.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		g.c.t.Fatal(err)
	}
	p := g.Process
	g.c.t.Cleanup(func() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume continues the gateway after Pause, with SIGCONT.
func (g *ClusterGateway) Resume() {
	g.c.t.Helper()
	if err := g.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		g.c.t.Fatal(err)
	}
}
