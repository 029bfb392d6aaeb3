package attack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/pipe"
	"github.com/tildegate/tildegate/wire"
)

// accessLog turns on Caddy's access log, as JSON on the process's output,
// in every site of a gateway's Caddyfile.
func accessLog(caddyfile string) string {
	return strings.ReplaceAll(caddyfile, `respond "gateway"`, "log {\n\t\toutput stderr\n\t\tformat json\n\t}\n\trespond \"gateway\"")
}

// loggerOf returns the logger and message of a JSON log line, to say where
// a secret was without quoting the line.
func loggerOf(line string) string {
	var entry struct{ Logger, Msg string }
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		return "a line that is not JSON"
	}
	return fmt.Sprintf("logger %q, message %q", entry.Logger, entry.Msg)
}

// TestHelloNotInAccessLog turns Caddy's access log on (by a reload through
// the admin API, as an operator would), then registers a real agent over
// TLS and a hand-driven one over plain HTTP, and sends a request through
// each tunnel, so that control and back hellos pass. Must hold: the access
// log logs the requests (so the check is not vacuous) with the hello's
// header redacted, and no line of the gateway's output holds a hello's
// value, nor the base64 of any nonce, session, ticket or proof the
// hand-driven agent sent.
func TestHelloNotInAccessLog(t *testing.T) {
	t.Parallel()
	local := e2e.LocalService(t, "acc")
	g := e2e.StartGateway(t, env, "/~~acc=acc-pw#:*;\n/~~acc2=acc2-pw#:*;\n")
	if err := g.Reload(accessLog(g.Config())); err != nil {
		t.Fatalf("turning the access log on: %v", err)
	}
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("acc", "acc-pw", g.Address(), local.Listener.Addr().String()))
	agent.Log.WaitFor(20*time.Second, 0, "registered", "acc")
	if status, _, err := e2e.Get(env.Client(), g.URL("/~~acc/hello")); err != nil || status != http.StatusOK {
		t.Fatalf("a request through the real agent: %d %v", status, err)
	}

	conn := dialFrom(t, "127.0.0.1", g.PlainAddress())
	p, err := e2e.Handshake(conn, nil, g.PlainAddress(), "acc2", "acc2-pw", nil)
	if err != nil {
		t.Fatalf("registering acc2: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	p.KeepAlive(stop)
	got := make(chan int, 1)
	go func() {
		status, _, _ := e2e.Get(env.Client(), g.URL("/~~acc2/x"))
		got <- status
	}()
	open, err := p.NextOpen(10 * time.Second)
	if err != nil {
		t.Fatalf("waiting for OPEN: %v", err)
	}
	bc := dialFrom(t, "127.0.0.1", g.PlainAddress())
	hello := p.BackHello(nil, open.Ticket, wire.KindMux)
	a, br := upgrade(bc, request(g.PlainAddress(), "/~~acc2", wire.UpgradeToken, hello.String()))
	if br == nil {
		t.Fatalf("the back connection was refused: %s", a)
	}
	m, err := p.Mux(pipe.ReaderConn(bc, br), open.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	stream, _, err := m.Accept(10 * time.Second)
	if err != nil {
		t.Fatalf("waiting for the request's stream: %v", err)
	}
	// Answer the request, so that it ends and is logged.
	_, _ = stream.Write(wire.StreamAccepted)
	if _, err := http.ReadRequest(bufio.NewReader(stream)); err != nil {
		t.Fatalf("reading the request on the stream: %v", err)
	}
	_, _ = stream.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
	if status := <-got; status != http.StatusOK {
		t.Errorf("the request through the hand-driven agent: %d", status)
	}
	time.Sleep(500 * time.Millisecond)

	log := g.Log.String()
	var access []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"logger":"http.log.access`) {
			access = append(access, l)
		}
	}
	t.Logf("%d access log lines, %d of them for upgrades", len(access), strings.Count(strings.Join(access, "\n"), `"Upgrade":["`+wire.UpgradeToken+`"]`))
	if !strings.Contains(strings.Join(access, "\n"), "/~~acc2/x") {
		t.Fatalf("the access log is not on: no line for the request through the tunnel; the log:\n%s", strings.Join(access, "\n"))
	}
	if !strings.Contains(strings.Join(access, "\n"), `"`+wire.HeaderHello+`":["REDACTED"]`) {
		t.Errorf("no access log line shows the %s header redacted", wire.HeaderHello)
	}
	for _, secret := range []string{wire.HelloScheme + " v=", "role=control", "role=back", "nonce=",
		wire.EncodeValue(p.Session), wire.EncodeValue(open.Ticket), wire.EncodeValue(hello.Nonce), wire.EncodeValue(hello.Proof)} {
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(strings.ToLower(l), strings.ToLower(secret)) {
				t.Errorf("the gateway's output holds %q (or a value of the hello), in a line of %s",
					secret[:min(len(secret), 16)], loggerOf(l))
				break
			}
		}
	}
}
