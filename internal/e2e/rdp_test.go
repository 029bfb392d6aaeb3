package e2e

import (
	"strings"
	"testing"
	"time"
)

// certificates is an Env with only the CA and the certificate for
// 127.0.0.1, without the binaries, which these tests do not use.
func certificates(t *testing.T) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir()}
	if err := e.writeCertificates(); err != nil {
		t.Fatal(err)
	}
	return e
}

// assertConnected fails the test unless xfreerdp went through the whole
// connection sequence with security.
func assertConnected(t *testing.T, code int, output, security string) {
	t.Helper()
	if code != 0 || !RDPActive(output) || RDPSecurity(output) != security {
		t.Fatalf("xfreerdp: exit code %d, active %v, security %q; want 0, true, %q; its output:\n%s",
			code, RDPActive(output), RDPSecurity(output), security, output)
	}
}

func TestXfreerdpConnectsToXrdp(t *testing.T) {
	t.Parallel()
	display := StartXvfb(t)
	xrdp := StartXrdp(t, certificates(t))

	code, out := RunXfreerdp(t, display, "/v:"+xrdp.Address(), "/u:/~~srv1")
	assertConnected(t, code, out, "TLS")

	code, out = RunXfreerdp(t, display, "/v:"+xrdp.Address(), "/u:someone", "/load-balance-info:/~~srv1")
	assertConnected(t, code, out, "TLS")
	if !strings.Contains(out, "routing token") {
		t.Errorf("xfreerdp did not send /load-balance-info: as a routing token; its output:\n%s", out)
	}

	xrdp.Log.WaitFor(5*time.Second, 1, "TLS connection established from 127.0.0.1")
}

func TestXfreerdpConnectsToShadowWithNLA(t *testing.T) {
	t.Parallel()
	display := StartXvfb(t)
	shadow := StartShadow(t, display, "alice", "s3cret")

	code, out := RunXfreerdp(t, display, "/v:"+shadow.Address(), "/u:alice", "/p:s3cret")
	assertConnected(t, code, out, "NLA")
	shadow.Log.WaitFor(5*time.Second, 0, "Client from 127.0.0.1 is activated")

	code, out = RunXfreerdp(t, display, "/v:"+shadow.Address(), "/u:alice", "/p:wrong")
	if code == 0 || RDPActive(out) {
		t.Fatalf("xfreerdp with a wrong password: exit code %d, active %v; want a failure; its output:\n%s", code, RDPActive(out), out)
	}
	if n := shadow.Log.Count("Client from 127.0.0.1 is activated"); n != 1 {
		t.Errorf("the shadow server activated %d clients, want 1", n)
	}
}
