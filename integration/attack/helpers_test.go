package attack

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// ioTimeout bounds every exchange of a hand-driven peer: generous, for a
// shared machine under -race.
const ioTimeout = 30 * time.Second

// loopback returns the i-th address of a block of 127.0.0.0/8, which is all
// loopback: block picks the third byte's range, so that tests use addresses
// of their own.
func loopback(block, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", block, 1+i/250, 1+i%250)
}

// dialFrom opens a TCP connection to addr from the local address ip.
func dialFrom(t testing.TB, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: ioTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return c
}

// dialTLSFrom opens a TLS connection to the gateway at addr from ip.
func dialTLSFrom(t testing.TB, ip, addr string) (*tls.Conn, *tls.ConnectionState) {
	t.Helper()
	cfg := env.TLSConfig()
	cfg.ServerName, _, _ = net.SplitHostPort(addr)
	c := tls.Client(dialFrom(t, ip, addr), cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS to %s from %s: %v", addr, ip, err)
	}
	cs := c.ConnectionState()
	return c, &cs
}

// answer is what the gateway answered one upgrade request: its status,
// headers and body, and after a 101 to a control hello, the frame that
// answered the AUTH.
type answer struct {
	Status int
	Header http.Header
	Body   string
	// Frame is the REFUSE or CLOSE code that answered AUTH after a 101;
	// zero when none did.
	Frame   wire.Code
	Reason  string
	Welcome bool
	Err     error
}

// refusal is the code of a refusal before the 101, from the
// Tildegate-Refusal header.
func (a answer) refusal() string { return a.Header.Get(wire.HeaderRefusal) }

// verdict reports whether the answer is the gateway's verdict on the
// password: a wrong-password REFUSE after the key exchange, or a WELCOME.
func (a answer) verdict() bool { return a.Frame == wire.CodeWrongPassword || a.Welcome }

// throttled reports whether the answer is a throttle refusal as the
// protocol defines it: HTTP 429 with Retry-After, before any 101.
func (a answer) throttled() bool {
	return a.Status == http.StatusTooManyRequests && a.refusal() == "throttled" && a.Header.Get("Retry-After") != ""
}

func (a answer) String() string {
	switch {
	case a.Err != nil:
		return "error: " + a.Err.Error()
	case a.Welcome:
		return "101 then WELCOME"
	case a.Status == http.StatusSwitchingProtocols:
		return fmt.Sprintf("101 then REFUSE %s: %s", a.Frame, a.Reason)
	}
	return fmt.Sprintf("%d %s: %s", a.Status, a.refusal(), strings.TrimSpace(a.Body))
}

// request is a raw upgrade request: any Upgrade token and any hello, and
// any further header lines, each ending in CRLF.
func request(host, path, upgrade, hello string, headers ...string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: %s\r\n%s\r\n",
		path, host, upgrade, wire.HeaderHello, hello, strings.Join(headers, ""))
}

// upgrade sends req on conn and reads the answer; on 101 it returns the
// reader that holds what follows it.
func upgrade(conn net.Conn, req string) (answer, *bufio.Reader) {
	if _, err := io.WriteString(conn, req); err != nil {
		return answer{Err: err}, nil
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return answer{Err: err}, nil
	}
	a := answer{Status: res.StatusCode, Header: res.Header}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return a, br
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 16<<10))
	res.Body.Close()
	a.Body = string(body)
	return a, nil
}

// control runs a control handshake for name with password on conn (TLS
// state cs, nil without TLS), resuming the session resume when it is not
// nil, as an agent would, and returns whatever the gateway answered. The
// upgrade request carries the extra header lines, each ending in CRLF.
func control(conn net.Conn, cs *tls.ConnectionState, name, password string, resume []byte, headers ...string) answer {
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: e2e.Nonce(), Resume: resume}
	helloValue := hello.String()
	a, br := upgrade(conn, request(conn.RemoteAddr().String(), "/~~"+name, wire.UpgradeToken, helloValue, headers...))
	if br == nil {
		return a
	}
	challengeValue := a.Header.Get(wire.HeaderChallenge)
	ch, err := wire.ParseChallenge(challengeValue)
	if err != nil {
		a.Err = err
		return a
	}
	var binding []byte
	if ch.Bound {
		binding = wire.Binding(cs)
	}
	ex := wire.NewAgentExchange(password, wire.SessionID(name, hello.Nonce, ch.Nonce, binding))
	keys, err := ex.Finish(ch.Share, helloValue, challengeValue)
	if err != nil {
		a.Err = err
		return a
	}
	// A resume needs the previous session's key, which an attacker does
	// not have: a proof under a made-up key stands for its best try.
	auth := wire.Frame{Type: wire.FrameAuth, Share: ex.Share(), Confirmation: keys.AgentConfirmation()}
	if resume != nil {
		auth.ResumeProof = keys.ResumeProof(wire.SessionKey(e2e.Nonce()))
	}
	if err := wire.WriteFrame(conn, auth); err != nil {
		a.Err = err
		return a
	}
	f, err := wire.NewOpener(keys.Session, false).ReadWelcome(br)
	switch {
	case err != nil:
		a.Err = fmt.Errorf("reading the answer to AUTH: %w", err)
	case f.Type == wire.FrameRefuse || f.Type == wire.FrameClose:
		a.Frame, a.Reason = f.Code, f.Reason
	case f.Type == wire.FrameWelcome:
		a.Welcome = true
	default:
		a.Err = fmt.Errorf("frame of type %d answered AUTH", f.Type)
	}
	return a
}

// storm runs n control handshakes at once: attempt(i) makes the i-th one
// after every connection is open, so that they all reach the gateway
// together.
func storm(n int, dial func(i int) net.Conn, attempt func(i int, c net.Conn) answer) []answer {
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dial(i)
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = attempt(i, conns[i])
			conns[i].Close()
		}()
	}
	close(start)
	wg.Wait()
	return answers
}

// tally counts answers by what they say.
func tally(answers []answer) map[string]int {
	m := map[string]int{}
	for _, a := range answers {
		switch {
		case a.verdict():
			m["verdict"]++
		case a.throttled():
			m["throttled"]++
		default:
			m[a.String()]++
		}
	}
	return m
}

// refusedLines returns the gateway's refusal log lines about name.
func refusedLines(g *e2e.Gateway, name string) []string {
	var out []string
	for _, l := range strings.Split(g.Log.String(), "\n") {
		if strings.Contains(l, "agent connection refused") && strings.Contains(l, `"name":"`+name+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// assertAbsent fails the test if log contains any of secrets; it never
// prints a secret, only which one of the list it was.
func assertAbsent(t testing.TB, what, log string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("%s contains secret #%d of the list", what, i)
		}
	}
}
