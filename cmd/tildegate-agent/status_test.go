package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tildegate/tildegate/agent"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/internal/testgateway"
	"github.com/tildegate/tildegate/wire"
)

// statusAddress returns the address the status server of p listens on,
// from its log.
func statusAddress(t *testing.T, p *agentProcess) string {
	t.Helper()
	line := p.waitLog(t, "status server listening")
	m := regexp.MustCompile(`"addr": "([^"]+)"`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	return m[1]
}

// get fetches path from the status server at addr.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// readyAnswer is the body of /ready.
type readyAnswer struct {
	Ready         bool   `json:"ready"`
	Reason        string `json:"reason"`
	Entries       int    `json:"entries"`
	NotRegistered []struct {
		Name      string         `json:"name"`
		State     agent.State    `json:"state"`
		Refusal   *agent.Refusal `json:"refusal"`
		LastError string         `json:"last_error"`
	} `json:"not_registered"`
}

// statusAnswer is the body of /status.
type statusAnswer struct {
	Version   string              `json:"version"`
	Started   time.Time           `json:"started"`
	OpenFiles agent.FileBudget    `json:"open_files"`
	Entries   []agent.EntryStatus `json:"entries"`
}

// waitJSON fetches path until its status code is code and ok holds for
// its body, decoded into a fresh T, and returns that body.
func waitJSON[T any](t *testing.T, addr, path string, code int, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := get(t, addr, path)
		var v T
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v in %s", path, err, body)
		}
		if status == code && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s; last answer %d %s", path, what, status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoSession opens a web stream on b to the agent's echo service, sends
// size bytes, reads them back and closes the stream.
func echoSession(t *testing.T, b *testgateway.Back, size int) {
	t.Helper()
	s, err := b.Stream(t, wire.KindHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	msg := strings.Repeat("e", size)
	if _, err := io.WriteString(s, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %v", err)
	}
}

// TestStatusServer: /ready turns 200 once every entry is registered and
// 503 again when a gateway goes down; /status and /metrics count the
// sessions and their bytes.
func TestStatusServer(t *testing.T) {
	home := testgateway.New(t, true, map[string]string{"home": "pw"})
	office := testgateway.New(t, false, map[string]string{"office": "pw"})
	office.Set(func(s *testgateway.Settings) { s.Refuse = wire.CodeNameTaken })
	path := writeConfig(t, home.Line("home", "pw", e2e.EchoServer(t))+office.Line("office", "pw", ""))
	p := startCommand(t, "-config", path, "-ca", home.CAFile, "-status-addr", "127.0.0.1:0")
	addr := statusAddress(t, p)

	r := waitJSON(t, addr, "/ready", http.StatusServiceUnavailable, "home registered, office refused", func(r readyAnswer) bool {
		return len(r.NotRegistered) == 1 && r.NotRegistered[0].State == agent.StateRefused
	})
	if n := r.NotRegistered[0]; r.Ready || n.Name != "office" || n.Refusal == nil || n.Refusal.Code != "name-taken" ||
		!strings.Contains(n.LastError, "name-taken") || r.Reason != "1 of 2 entries not registered" {
		t.Errorf("/ready while office is refused: %+v", r)
	}
	office.Set(func(s *testgateway.Settings) { s.Refuse = 0 })
	r = waitJSON(t, addr, "/ready", http.StatusOK, "both registered", func(r readyAnswer) bool { return r.Ready })
	if r.Entries != 2 || len(r.NotRegistered) != 0 {
		t.Errorf("/ready once registered: %+v", r)
	}
	if _, body := get(t, addr, "/status"); strings.Count(body, `"registered_since":`) != 4 {
		t.Errorf("/status does not give registered_since for both entries and their addresses, as the README says: %s", body)
	}

	c := testgateway.Receive(t, home.Controls, "the control connection of home")
	c.Open(wire.KindMux)
	b := testgateway.Receive(t, home.Backs, "a back connection")
	defer b.Close()
	echoSession(t, b, 1000)
	echoSession(t, b, 234)
	st := waitJSON(t, addr, "/status", http.StatusOK, "the sessions' ends", func(s statusAnswer) bool {
		return len(s.Entries) == 2 && s.Entries[0].Sessions.HTTP == agent.SessionCount{Open: 0, Total: 2} &&
			s.Entries[0].BytesToLocal == 1234 && s.Entries[0].BytesFromLocal == 1234
	})
	h, o := st.Entries[0], st.Entries[1]
	if st.Version != "devel" || st.Started.IsZero() || st.OpenFiles.Limit <= 0 || st.OpenFiles.InUse < 3 {
		t.Errorf("/status of the agent: %+v", st)
	}
	if h.Name != "home" || h.State != agent.StateRegistered || h.Gateway != home.Addr.String() || !h.TLS ||
		h.BackConnections != 1 || h.RegisteredSince.IsZero() || h.Registrations.Registered != 1 || h.Sessions.RDP.Total != 0 {
		t.Errorf("/status of home: %+v", h)
	}
	if o.Name != "office" || o.State != agent.StateRegistered || o.TLS || o.Registrations.Refused == 0 ||
		!strings.Contains(o.LastError, "name-taken") {
		t.Errorf("/status of office: %+v", o)
	}

	status, body := get(t, addr, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tildegate_agent_sessions_total", map[string]string{"name": "home", "kind": "http"}, 2},
		{"tildegate_agent_sessions_open", map[string]string{"name": "home", "kind": "http"}, 0},
		{"tildegate_agent_bytes_total", map[string]string{"name": "home", "direction": "to_local"}, 1234},
		{"tildegate_agent_bytes_total", map[string]string{"name": "home", "direction": "from_local"}, 1234},
		{"tildegate_agent_back_connections_open", map[string]string{"name": "home"}, 1},
		{"tildegate_agent_registrations_total", map[string]string{"name": "home", "result": "registered"}, 1},
		{"tildegate_agent_entries", map[string]string{"state": "registered"}, 2},
		{"tildegate_agent_build_info", map[string]string{"version": "devel"}, 1},
	} {
		if got, ok := value(families[m.name], m.labels); !ok || got != m.want {
			t.Errorf("%s%v = %v (found %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// The gateway of home goes down.
	home.Stop()
	r = waitJSON(t, addr, "/ready", http.StatusServiceUnavailable, "home lost", func(r readyAnswer) bool {
		return len(r.NotRegistered) == 1 && r.NotRegistered[0].LastError != ""
	})
	if n := r.NotRegistered[0]; n.Name != "home" || n.State == agent.StateRegistered {
		t.Errorf("/ready after the gateway of home stopped: %+v", r)
	}
}

// value returns the value of the metric of f with the given labels.
func value(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestStatusHidesPasswords: neither the entries' passwords nor the
// proxies' appear in any answer of the status server, whatever the
// entries' states; the proxy users do.
func TestStatusHidesPasswords(t *testing.T) {
	secrets := []string{"Gw-Pass-Qx71", "Far-Pass-Vb28", "Proxy-Pass-Zk93", "Wrong-Pass-Jm55"}
	g := testgateway.New(t, false, map[string]string{"home": "Gw-Pass-Qx71", "far": "Far-Pass-Vb28", "wrong": "other"})
	// A proxy that refuses every login.
	px := e2e.ServeTCP(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		}
	})
	path := writeConfig(t, g.Line("home", "Gw-Pass-Qx71", "")+
		fmt.Sprintf("/~~far=Far-Pass-Vb28#%s -> puser:Proxy-Pass-Zk93@%s;\n", g.Addr, px)+
		g.Line("wrong", "Wrong-Pass-Jm55", ""))
	p := startCommand(t, "-config", path, "-status-addr", "127.0.0.1:0")
	addr := statusAddress(t, p)

	st := waitJSON(t, addr, "/status", http.StatusOK, "each entry's state", func(s statusAnswer) bool {
		return len(s.Entries) == 3 && s.Entries[0].State == agent.StateRegistered &&
			s.Entries[1].State == agent.StateWaiting && s.Entries[2].State == agent.StateRefused
	})
	if far := st.Entries[1]; len(far.Proxies) != 1 || far.Proxies[0] != (agent.ProxyHop{Address: px, Login: "Basic as puser"}) ||
		!strings.Contains(far.LastError, "407") {
		t.Errorf("/status of far: %+v", far)
	}
	var answers []string
	for _, path := range []string{"/ready", "/status", "/metrics"} {
		_, body := get(t, addr, path)
		answers = append(answers, body)
	}
	answers = append(answers, p.stderr.String())
	for _, a := range answers {
		for _, s := range secrets {
			if strings.Contains(a, s) {
				t.Errorf("a password, %s, in:\n%s", s, a)
			}
		}
	}
}

// TestStatusAddress: an address the status server cannot listen on stops
// the agent at its start; one beyond loopback is served, with a warning.
func TestStatusAddress(t *testing.T) {
	path := writeConfig(t, "")
	if code, _, stderr := runCommand(t, "-config", path, "-status-addr", "nowhere"); code != 1 || !strings.Contains(stderr, "-status-addr") {
		t.Errorf("-status-addr nowhere: status %d, stderr %q; want 1 and a message", code, stderr)
	}
	p := startCommand(t, "-config", path, "-status-addr", ":0")
	p.waitLog(t, "the status server listens beyond loopback")
	_, port, err := net.SplitHostPort(statusAddress(t, p))
	if err != nil {
		t.Fatal(err)
	}
	r := waitJSON(t, "127.0.0.1:"+port, "/ready", http.StatusServiceUnavailable, "no entries", func(readyAnswer) bool { return true })
	if r.Ready || !strings.Contains(r.Reason, "no entries") {
		t.Errorf("/ready without entries: %+v", r)
	}
}
