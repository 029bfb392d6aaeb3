package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// request sends a POST with body "ping" on a fresh web stream of a back
// connection, as the gateway's reverse proxy does, and returns the body of
// the answer.
func request(t *testing.T, b *testgateway.Back, path string) string {
	t.Helper()
	status, body := b.Request(t, "POST", path, "ping")
	if status != http.StatusOK {
		t.Errorf("%s answered %d", path, status)
	}
	return body
}

func TestRegisterAndServe(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			g := testgateway.New(t, tlsOn, map[string]string{"home": "s3cret#pw"})
			a := startAgent(t, optionsFor(g), g.Entry("Home", "s3cret#pw", localHTTP(t)))

			c := testgateway.Receive(t, g.Controls, "a control connection")
			if c.Hello.Resume != nil || c.Resumed {
				t.Errorf("hello resumes %x; want a fresh registration", c.Hello.Resume)
			}
			if c.Bound != tlsOn {
				t.Errorf("challenge bound = %v, want %v", c.Bound, tlsOn)
			}
			a.waitLog(t, "registered", "name", "Home", "resumed", "false", "tls", fmt.Sprint(tlsOn))

			c.Open(wire.KindMux)
			b := testgateway.Receive(t, g.Backs, "a back connection")
			defer b.Close()
			if got, want := request(t, b, "/first"), "local /first ping"; got != want {
				t.Errorf("first answer %q, want %q", got, want)
			}
			// The back connection carries more sessions, one stream each.
			if got, want := request(t, b, "/second"), "local /second ping"; got != want {
				t.Errorf("second answer %q, want %q", got, want)
			}

			a.stop()
			f := testgateway.Receive(t, c.Frames, "CLOSE at shutdown")
			if f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown {
				t.Errorf("at shutdown got frame %d code %s, want CLOSE shutting-down", f.Type, f.Code)
			}
			a.waitLog(t, "closed", "name", "Home", "reason", "the agent is stopping")
		})
	}
}

func TestSecretsNotLogged(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "s3cret-pw"})
	a := startAgent(t, optionsFor(g), g.Entry("home", "s3cret-pw", localHTTP(t)))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	request(t, b, "/")
	b.Close()
	c.Conn.Close()
	testgateway.Receive(t, g.Controls, "the resumed control connection")
	a.stop()
	for _, e := range a.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, "s3cret-pw") {
			t.Errorf("a log line holds the password: %s", line)
		}
	}
}

func TestResumeAfterDrop(t *testing.T) {
	g := testgateway.New(t, true, map[string]string{"home": "pw"})
	opts := optionsFor(g)
	opts.MinBackoff = 5 * time.Second // a retry must come at once, not after a delay
	a := startAgent(t, opts, g.Entry("home", "pw", localHTTP(t)))

	first := testgateway.Receive(t, g.Controls, "a control connection")
	testgateway.Receive(t, g.Attempts, "the first hello")
	dropped := time.Now()
	first.Conn.Close()

	at := testgateway.Receive(t, g.Attempts, "a hello after the drop")
	if !bytes.Equal(at.Hello.Resume, first.Session) {
		t.Fatalf("hello after the drop resumes %x, want the previous session %x", at.Hello.Resume, first.Session)
	}
	if d := at.At.Sub(dropped); d > 2*time.Second {
		t.Errorf("the agent came back after %s, want at once", d)
	}
	second := testgateway.Receive(t, g.Controls, "the resumed control connection")
	if !second.Resumed {
		t.Error("the resume proof did not match the previous session's key")
	}
	a.waitLog(t, "registered", "name", "home", "resumed", "true")

	// The new session serves back connections with its own key.
	second.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	if got := request(t, b, "/after"); got != "local /after ping" {
		t.Errorf("answer %q", got)
	}
}

func TestLiveness(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Alive, s.Dead = 50*time.Millisecond, 500*time.Millisecond })
	opts := optionsFor(g)
	opts.MinBackoff = 5 * time.Second
	startAgent(t, opts, g.Entry("home", "pw", ""))

	c := testgateway.Receive(t, g.Controls, "a control connection")
	f := testgateway.Receive(t, c.Frames, "ALIVE")
	if f.Type != wire.FrameAlive {
		t.Errorf("first frame from the agent has type %d, want ALIVE", f.Type)
	}
	// The test gateway never sends ALIVE: the agent must find it dead and
	// resume.
	start := time.Now()
	next := testgateway.Receive(t, g.Controls, "a control connection after the dead time")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead gateway noticed after %s, want about 500ms", d)
	}
	if !next.Resumed {
		t.Error("the agent did not resume its session after the dead time")
	}
}

// TestAnswersTheGatewaysAlive: the agent answers the gateway's ALIVE at
// once when it has been silent for half the alive interval or more, and
// not when it spoke lately: a flood of ALIVEs draws no flood back, and the
// agent's next ALIVE comes on its own schedule.
func TestAnswersTheGatewaysAlive(t *testing.T) {
	const alive = 2 * time.Second
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Alive, s.Dead = alive, 10*alive })
	startAgent(t, optionsFor(g), g.Entry("home", "pw", ""))
	c := testgateway.Receive(t, g.Controls, "a control connection")

	time.Sleep(alive/2 + 100*time.Millisecond)
	sent := time.Now()
	c.Send(wire.Frame{Type: wire.FrameAlive})
	if f := testgateway.Receive(t, c.Frames, "the answer to ALIVE"); f.Type != wire.FrameAlive {
		t.Fatalf("the agent answered with type %d, want ALIVE", f.Type)
	}
	answered := time.Now()
	if d := answered.Sub(sent); d > alive/4 {
		t.Errorf("the agent answered after %s, want at once", d)
	}

	for range 50 {
		c.Send(wire.Frame{Type: wire.FrameAlive})
	}
	if f := testgateway.Receive(t, c.Frames, "the agent's next ALIVE"); f.Type != wire.FrameAlive {
		t.Fatalf("the agent sent type %d, want ALIVE", f.Type)
	}
	if d := time.Since(answered); d < alive*3/4 {
		t.Errorf("the agent's next ALIVE came %s after its answer: the flood was answered, want its own schedule (%s)", d, alive)
	}
}

func TestPermanentRefusalRetriesSlowly(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Refuse = wire.CodeAddressNotAllowed })
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff, opts.SlowRetry = time.Millisecond, 2*time.Millisecond, 400*time.Millisecond
	a := startAgent(t, opts, g.Entry("home", "pw", ""))
	first := testgateway.Receive(t, g.Attempts, "a first attempt")
	second := testgateway.Receive(t, g.Attempts, "a second attempt")
	if d := second.At.Sub(first.At); d < 350*time.Millisecond {
		t.Errorf("retried after %s, want the slow retry of 400ms", d)
	}
	e := a.waitLog(t, "registration refused: address-not-allowed")
	if !strings.Contains(e.Message, "; retrying in 400ms") {
		t.Errorf("log %q does not say when it retries", e.Message)
	}
	if a.countLogs("registered") != 0 {
		t.Error("the agent says it registered")
	}
}

// TestNoConfirmationWaitsFiveMinutes: once the agent has sent its key
// confirmation, anything but the gateway's valid confirmation (a wrong
// one, a refusal of any kind, the gateway's wrong-password) may be an
// impostor harvesting one guess per attempt: the agent names the gateway
// and waits 5 minutes.
func TestNoConfirmationWaitsFiveMinutes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		set      func(s *testgateway.Settings)
		password string
		says     string
	}{
		{"wrong confirmation", func(s *testgateway.Settings) { s.WrongProof = true }, "pw", "the WELCOME's confirmation is wrong"},
		{"refusal after AUTH", func(s *testgateway.Settings) { s.RefuseAuth = wire.CodeThrottled }, "pw", "refused: throttled"},
		{"wrong password", func(s *testgateway.Settings) {}, "not the password", "refused: wrong-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testgateway.New(t, false, map[string]string{"home": "pw"})
			g.Set(tc.set)
			opts := optionsFor(g)
			opts.MinBackoff, opts.MaxBackoff, opts.SlowRetry = time.Millisecond, 2*time.Millisecond, 10*time.Millisecond
			a := startAgent(t, opts, g.Entry("home", tc.password, ""))
			testgateway.Receive(t, g.Attempts, "the first hello")
			e := a.waitLog(t, "registration failed at the gateway "+g.Addr.String()+": no valid key confirmation")
			if !strings.Contains(e.Message, tc.says) || !strings.HasSuffix(e.Message, "retrying in 5m0s") {
				t.Errorf("log %q, want it to say %q and a retry in 5 minutes", e.Message, tc.says)
			}
			testgateway.Nothing(t, g.Attempts, 300*time.Millisecond, "attempt before 5 minutes")
			if a.countLogs("registered") != 0 {
				t.Error("the agent says it registered")
			}
			select {
			case c := <-g.Controls: // past a WELCOME: the agent hangs up instead of using it
				if _, ok := <-c.Frames; ok {
					t.Error("the agent sent a frame after a wrong confirmation")
				}
			default:
			}
		})
	}
}

// TestRetryAfterHonoured: a throttled refusal with Retry-After is retried
// when the gateway says, even beyond the agent's longest backoff.
func TestRetryAfterHonoured(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Refuse, s.RetryAfter = wire.CodeThrottled, 2*time.Second })
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	a := startAgent(t, opts, g.Entry("home", "pw", ""))
	first := testgateway.Receive(t, g.Attempts, "a first attempt")
	e := a.waitLog(t, "registration refused: throttled")
	if !strings.Contains(e.Message, "retrying in 2s, as the gateway asked") {
		t.Errorf("log %q does not follow Retry-After", e.Message)
	}
	g.Set(func(s *testgateway.Settings) { s.Refuse, s.RetryAfter = 0, 0 })
	second := testgateway.Receive(t, g.Attempts, "a second attempt")
	if d := second.At.Sub(first.At); d < 1900*time.Millisecond {
		t.Errorf("retried after %s, want the 2s the gateway asked for", d)
	}
	if second.Hello.Resume != nil {
		t.Error("a fresh registration resumes a session")
	}
}

// TestBusyHonoured: a gateway too busy to take the handshake says when to
// come back; the agent comes back then, even beyond its longest backoff,
// a little later so as not to come with all those told the same, and a
// dropped session stays worth resuming.
func TestBusyHonoured(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	a := startAgent(t, opts, g.Entry("home", "pw", ""))
	testgateway.Receive(t, g.Attempts, "the first attempt")
	c := testgateway.Receive(t, g.Controls, "a control connection")
	g.Set(func(s *testgateway.Settings) { s.Refuse, s.RetryAfter = wire.CodeBusy, 2*time.Second })
	c.Conn.Close()
	first := testgateway.Receive(t, g.Attempts, "an attempt after the drop")
	e := a.waitLog(t, "registration deferred: busy")
	if !strings.Contains(e.Message, "as the gateway asked") {
		t.Errorf("log %q does not say it follows Retry-After", e.Message)
	}
	g.Set(func(s *testgateway.Settings) { s.Refuse, s.RetryAfter = 0, 0 })
	second := testgateway.Receive(t, g.Attempts, "an attempt after Retry-After")
	if d := second.At.Sub(first.At); d < 1900*time.Millisecond || d > 3500*time.Millisecond {
		t.Errorf("came back after %s, want the 2s the gateway asked for and at most a second more", d)
	}
	if second.Hello.Resume == nil {
		t.Error("the session dropped before the busy refusal was not resumed")
	}
}

func TestTransientRefusalRetriesSoon(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Refuse = wire.CodeNameTaken })
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff, opts.SlowRetry = 10*time.Millisecond, 20*time.Millisecond, time.Minute
	a := startAgent(t, opts, g.Entry("home", "pw", ""))
	for i := range 3 {
		testgateway.Receive(t, g.Attempts, fmt.Sprintf("attempt %d", i+1))
	}
	a.waitLog(t, "registration refused: name-taken")

	g.Set(func(s *testgateway.Settings) { s.Refuse = 0 })
	testgateway.Receive(t, g.Controls, "a control connection once the name is free")
	a.waitLog(t, "registered", "name", "home")
}

// TestInjectedFrame: a control frame that does not carry the session's
// tag (something on the path forged it) is not acted on: the agent drops
// the connection and resumes its session.
func TestInjectedFrame(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	opts := optionsFor(g)
	opts.MinBackoff = time.Millisecond
	a := startAgent(t, opts, g.Entry("home", "pw", localHTTP(t)))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Inject(wire.Frame{Type: wire.FrameOpen, Ticket: make([]byte, wire.TicketSize)})
	a.waitLog(t, "a control frame from the gateway failed its tag check")
	next := testgateway.Receive(t, g.Controls, "a control connection after the forged frame")
	if !next.Resumed {
		t.Error("the agent did not resume its session after dropping the connection")
	}
	testgateway.Nothing(t, g.Backs, 200*time.Millisecond, "back connection for the forged OPEN")
}

// TestWrongBackProof: a back connection whose 101 lacks the session's
// proof is dropped before any stream reaches the local service.
func TestWrongBackProof(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.WrongBackProof = true })
	local := countedHTTP(t)
	a := startAgent(t, optionsFor(g), g.Entry("home", "pw", local.addr))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	e := a.waitLog(t, "back connection refused")
	if err := e.ContextMap()["error"]; !strings.Contains(fmt.Sprint(err), "lacks the session's proof") {
		t.Errorf("back connection refused: %v", err)
	}
	// The agent hung up without running the multiplexer: no answer at all.
	_, err := b.Stream(t, wire.KindHTTP)
	var ref *wire.Refusal
	if err == nil || errors.As(err, &ref) {
		t.Errorf("a stream on a back connection without the gateway's proof: %v; want no answer", err)
	}
	if n := local.accepted.Load(); n != 0 {
		t.Errorf("the local service got %d connections, want none", n)
	}
}

func TestGatewayClose(t *testing.T) {
	t.Run("permanent", func(t *testing.T) {
		g := testgateway.New(t, false, map[string]string{"home": "pw"})
		opts := optionsFor(g)
		opts.MinBackoff, opts.SlowRetry = time.Millisecond, 400*time.Millisecond
		a := startAgent(t, opts, g.Entry("home", "pw", ""))
		c := testgateway.Receive(t, g.Controls, "a control connection")
		testgateway.Receive(t, g.Attempts, "the first hello")
		c.Send(wire.Frame{Type: wire.FrameClose, Code: wire.CodeEntryRemoved, Reason: "gone from balance.bin"})
		closed := time.Now()
		c.Conn.Close()
		a.waitLog(t, "closed by the gateway: entry-removed: gone from balance.bin")
		at := testgateway.Receive(t, g.Attempts, "an attempt after the close")
		if d := at.At.Sub(closed); d < 350*time.Millisecond {
			t.Errorf("retried after %s, want the slow retry", d)
		}
		if at.Hello.Resume != nil {
			t.Error("the agent resumes a session the gateway closed")
		}
	})
	t.Run("transient", func(t *testing.T) {
		g := testgateway.New(t, false, map[string]string{"home": "pw"})
		opts := optionsFor(g)
		opts.MinBackoff, opts.SlowRetry = 10*time.Millisecond, time.Minute
		a := startAgent(t, opts, g.Entry("home", "pw", ""))
		c := testgateway.Receive(t, g.Controls, "a control connection")
		c.Send(wire.Frame{Type: wire.FrameClose, Code: wire.CodeShuttingDown, Reason: "restarting"})
		c.Conn.Close()
		next := testgateway.Receive(t, g.Controls, "a control connection after the close")
		if next.Hello.Resume != nil {
			t.Error("the agent resumes a session the gateway closed")
		}
		a.waitLog(t, "closed by the gateway: shutting-down: restarting")
	})
}

func TestUnknownFramesIgnored(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	startAgent(t, optionsFor(g), g.Entry("home", "pw", localHTTP(t)))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.SendPayload(99, []byte("abc"))
	c.Send(wire.Frame{Type: wire.FrameAlive})
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	if got := request(t, b, "/x"); got != "local /x ping" {
		t.Errorf("answer %q", got)
	}
}

// TestOpenBehindTheWelcome: an OPEN that arrives with the WELCOME, read
// into the handshake's buffer with it, is served.
func TestOpenBehindTheWelcome(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.OpenWithWelcome = true })
	startAgent(t, optionsFor(g), g.Entry("home", "pw", localHTTP(t)))
	testgateway.Receive(t, g.Controls, "a control connection")
	b := testgateway.Receive(t, g.Backs, "the back connection of the OPEN sent with the WELCOME")
	defer b.Close()
	if got := request(t, b, "/x"); got != "local /x ping" {
		t.Errorf("answer %q", got)
	}
}

// TestLocalServiceDown: a stream to a local service that refuses
// connections is refused as local-unavailable in answer to its opening,
// before the gateway sends anything of the session, and the failure is
// logged once per burst.
func TestLocalServiceDown(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	local := closedPort(t)
	a := startAgent(t, optionsFor(g), g.Entry("home", "pw", local))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	for range 3 {
		_, err := b.Stream(t, wire.KindHTTP)
		var ref *wire.Refusal
		if !errors.As(err, &ref) || ref.Code != wire.CodeLocalUnavailable || !strings.Contains(ref.Reason, local) {
			t.Fatalf("stream to a dead local service: %v; want a local-unavailable refusal naming %s", err, local)
		}
	}
	a.waitLog(t, "the local service refuses connections")
	if n := a.countLogs("the local service refuses connections"); n != 1 {
		t.Errorf("logged the local failure %d times, want once per burst", n)
	}
}

func TestUnboundTLSWarnsOnce(t *testing.T) {
	g := testgateway.New(t, true, map[string]string{"home": "pw"})
	g.Set(func(s *testgateway.Settings) { s.Unbound = true })
	a := startAgent(t, optionsFor(g), g.Entry("home", "pw", localHTTP(t)))
	c := testgateway.Receive(t, g.Controls, "a control connection")
	if c.Bound {
		t.Fatal("the test gateway bound the session")
	}
	c.Conn.Close()
	c = testgateway.Receive(t, g.Controls, "a second control connection")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, g.Backs, "a back connection")
	defer b.Close()
	if got := request(t, b, "/u"); got != "local /u ping" {
		t.Errorf("answer %q", got)
	}
	if n := a.countLogs("binding=none"); n != 1 {
		t.Errorf("warned %d times about binding=none, want once", n)
	}
}

func TestApplyWhileRunning(t *testing.T) {
	names := map[string]string{"a": "pw", "b": "pw", "c": "pw", "d": "pw"}
	g := testgateway.New(t, false, names)
	opts := optionsFor(g)
	opts.MinBackoff = 10 * time.Millisecond
	local := localHTTP(t)
	ea, eb, ed := g.Entry("a", "pw", local), g.Entry("b", "pw", local), g.Entry("d", "pw", local)
	a := startAgent(t, opts, ea, eb, ed)
	controls := make(map[string]*testgateway.Control)
	for range 3 {
		c := testgateway.Receive(t, g.Controls, "a control connection")
		controls[c.Name] = c
	}
	for _, name := range []string{"a", "b", "d"} {
		a.waitLog(t, "registered", "name", name) // the agent has read its WELCOME
	}

	changed := ea
	changed.Local = balancebin.HostPort{Host: "127.0.0.1", Port: 1}
	moved := ed
	moved.Pos.Line = 7 // only the position differs: d keeps running
	a.Apply([]balancebin.BackEntry{changed, moved, g.Entry("c", "pw", local)})

	for _, name := range []string{"a", "b"} {
		f := testgateway.Receive(t, controls[name].Frames, "CLOSE for "+name)
		if f.Type != wire.FrameClose || f.Code != wire.CodeShuttingDown {
			t.Errorf("%s got frame %d code %s, want CLOSE shutting-down", name, f.Type, f.Code)
		}
	}
	got := make(map[string]bool)
	for range 2 {
		got[testgateway.Receive(t, g.Controls, "a new control connection").Name] = true
	}
	if !got["a"] || !got["c"] {
		t.Errorf("new registrations %v, want a and c", got)
	}
	testgateway.Nothing(t, g.Controls, 200*time.Millisecond, "registration")
	select {
	case f, ok := <-controls["d"].Frames:
		t.Errorf("the unchanged entry got frame %+v (open %v)", f, ok)
	default:
	}
	a.waitLog(t, "entry removed", "name", "b")
	a.waitLog(t, "closed", "name", "b", "reason", reasonRemoved)
	a.waitLog(t, "closed", "name", "a", "reason", reasonChanged)
}

func TestRegistersThroughProxyChain(t *testing.T) {
	g := testgateway.New(t, true, map[string]string{"home": "pw"})
	second := fakeProxy(t, "", "")
	first := fakeProxy(t, "alice", "proxypw")
	e := g.Entry("home", "pw", localHTTP(t))
	e.Proxies = []balancebin.Proxy{
		{Auth: balancebin.ProxyAuthBasic, User: "alice", Password: "proxypw", Address: first.addr},
		{Address: second.addr},
	}
	startAgent(t, optionsFor(g), e)
	if c := testgateway.Receive(t, g.Controls, "a control connection"); c.Name != "home" {
		t.Errorf("registered %q, want home", c.Name)
	}
	if got, want := first.target(t), second.addr.String(); got != want {
		t.Errorf("the first proxy was asked for %s, want %s", got, want)
	}
	if got, want := second.target(t), g.Addr.String(); got != want {
		t.Errorf("the second proxy was asked for %s, want %s", got, want)
	}
}

func TestProxyLoginRefusedRetriesSlowly(t *testing.T) {
	g := testgateway.New(t, false, map[string]string{"home": "pw"})
	px := fakeProxy(t, "alice", "right")
	e := g.Entry("home", "pw", "")
	e.Proxies = []balancebin.Proxy{{Auth: balancebin.ProxyAuthBasic, User: "alice", Password: "wr0ng-pw", Address: px.addr}}
	opts := optionsFor(g)
	opts.MinBackoff, opts.MaxBackoff, opts.SlowRetry = time.Millisecond, 2*time.Millisecond, time.Minute
	a := startAgent(t, opts, e)
	l := a.waitLog(t, "the proxy login must change")
	if !strings.Contains(l.Message, "407 Proxy Authentication Required: the proxy refused the login") ||
		!strings.Contains(l.Message, "retrying in 1m0s") {
		t.Errorf("log %q", l.Message)
	}
	time.Sleep(100 * time.Millisecond)
	if n := a.countLogs("the proxy login must change"); n != 1 {
		t.Errorf("%d attempts in 100ms, want 1 (slow retry)", n)
	}
	for _, l := range a.logs.All() {
		if strings.Contains(fmt.Sprint(l.Message, l.Context), "wr0ng-pw") {
			t.Errorf("a log shows the proxy password: %q", l.Message)
		}
	}
	testgateway.Nothing(t, g.Attempts, 100*time.Millisecond, "attempt past the proxy")
}

func TestRunBadCAFile(t *testing.T) {
	a := New(Options{CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Run(ctx); err == nil || !strings.Contains(err.Error(), "root certificates") {
		t.Errorf("Run with a missing CA file: %v", err)
	}
}
