package tunnel

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/modules/broker"
	"github.com/tildegate/tildegate/modules/gateway"
)

// adminJSON gets path on the gateway's admin endpoint into v.
func adminJSON(t *testing.T, g *e2e.Gateway, path string, v any) {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", g.Admin, path))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", path, res.Status, body)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// adminPost posts to path on the admin endpoint and returns the status
// and body.
func adminPost(t *testing.T, g *e2e.Gateway, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", g.Admin, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// agentStatus returns the admin API's entry for the back entry name.
func agentStatus(t *testing.T, g *e2e.Gateway, name string) broker.AgentStatus {
	t.Helper()
	var agents []broker.AgentStatus
	adminJSON(t, g, "/tildegate/agents", &agents)
	for _, a := range agents {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("the admin API does not list %s: %+v", name, agents)
	return broker.AgentStatus{}
}

// TestMetricsAndAdminAPI sends known traffic through a direct name, a back
// entry and native RDP through its agent. Must hold: the scraped metrics
// count it (requests, bytes, sessions, registrations), a quiet back entry
// has no series, one whose agent is connected but that saw no request has
// only its agent's, and after a config reload and a balance.bin edit the
// series are still there and no counter went back; the admin API lists
// the names and the agent with the right fields, and each alone; disconnect?hold= keeps
// the agent out for the hold (the agent logs the refusal and waits it
// out), then lets it back; bad admin requests are refused with the reason.
func TestMetricsAndAdminAPI(t *testing.T) {
	local := e2e.LocalService(t, "ops").Listener.Addr().String()
	rdp := e2e.EchoServer(t)
	g := e2e.StartGateway(t, env, fmt.Sprintf("/~~web=%s;\nSSL /~~home=pw#:*;\n/~~quiet=pw2#:*;\n/~~idle=pw3#:*;\n", local))
	agent := env.StartAgent(t, "agent", fmt.Sprintf("SSL /~~home=pw#%s => %s RDPPORT %s;\nSSL /~~idle=pw3#%[1]s => %[2]s;\n",
		g.Address(), local, rdp))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")
	agent.Log.WaitFor(10*time.Second, 0, "registered", "idle")
	waitServed(t, g.URL("/~~home/hello"), 5*time.Second)

	client := env.Client()
	for range 3 {
		if status, _, err := e2e.Get(client, g.URL("/~~web/hello")); err != nil || status != http.StatusOK {
			t.Fatalf("direct name: %d %v", status, err)
		}
	}
	const downloads, size = 5, 100000
	for range downloads {
		if status, body, err := e2e.Get(client, g.URL(fmt.Sprintf("/~~home/download?size=%d", size))); err != nil || status != http.StatusOK || len(body) != size {
			t.Fatalf("through the agent: %d, %d bytes, %v", status, len(body), err)
		}
	}
	rdpBytes := e2e.RDPEcho(t, g.Address(), "home", 20000)

	families := g.Metrics(t)
	want := func(family string, min float64, labels ...string) {
		t.Helper()
		v, ok := e2e.Metric(families, family, labels...)
		if !ok || v < min {
			t.Errorf("%s%v = %v (present %v), want at least %v", family, labels, v, ok, min)
		}
	}
	want("tildegate_names", 3, "kind", "back")
	want("tildegate_names", 1, "kind", "direct")
	want("tildegate_agent_connected", 1, "name", "home")
	want("tildegate_back_connections", 1, "name", "home")
	want("tildegate_registrations_total", 1, "result", "accepted")
	want("tildegate_requests_total", downloads+1, "name", "home") // and waitServed's
	want("tildegate_tunnel_bytes_total", downloads*size, "name", "home", "direction", "from_agent")
	want("tildegate_sessions_total", 1, "name", "home", "kind", "rdp")
	want("tildegate_rdp_sessions_total", 1, "name", "home")
	want("tildegate_rdp_bytes_total", float64(rdpBytes), "name", "home", "direction", "from_client")
	want("tildegate_rdp_bytes_total", float64(rdpBytes), "name", "home", "direction", "to_client")
	want("tildegate_session_open_seconds", 2)
	if _, ok := e2e.Metric(families, "tildegate_agent_connected", "name", "quiet"); ok {
		t.Error("a back entry that saw no traffic has series")
	}
	want("tildegate_agent_connected", 1, "name", "idle")
	if _, ok := e2e.Metric(families, "tildegate_requests_total", "name", "idle"); ok {
		t.Error("a back entry that saw no request has series of its traffic")
	}
	for _, m := range families["tildegate_session_open_seconds"].GetMetric() {
		if len(m.Label) > 0 {
			t.Errorf("the histogram has labels: %v", m.Label)
		}
	}

	// The admin API.
	var names []gateway.NameStatus
	adminJSON(t, g, "/tildegate/names", &names)
	kinds := map[string]string{}
	for _, n := range names {
		kinds[n.Name] = strings.Join(n.Kinds, ",")
		switch n.Name {
		case "web":
			if len(n.Upstreams) != 1 || n.Upstreams[0].Address != local || n.Upstreams[0].Health != "healthy" {
				t.Errorf("web's upstreams: %+v", n.Upstreams)
			}
			if !strings.HasPrefix(n.DefinedIn, g.BalancePath+":1:") {
				t.Errorf("web defined in %q, want %s:1:...", n.DefinedIn, g.BalancePath)
			}
		case "home":
			if !strings.HasPrefix(n.DefinedIn, g.BalancePath+":2:") {
				t.Errorf("home defined in %q, want %s:2:...", n.DefinedIn, g.BalancePath)
			}
		}
	}
	if kinds["web"] != "direct" || kinds["home"] != "back" || kinds["quiet"] != "back" || kinds["idle"] != "back" {
		t.Errorf("names and kinds: %v", kinds)
	}
	home := agentStatus(t, g, "home")
	if !home.Connected || !strings.HasPrefix(home.Address, "127.0.0.1") || !strings.HasPrefix(home.Agent, "tildegate-agent/") ||
		home.Since == nil || home.LastHeard == nil || time.Since(*home.LastHeard) > 5*time.Second || !home.TLS || !home.Bound ||
		home.BackConnections != 2 || home.Requests < downloads || home.BytesFromAgent < downloads*size || home.SessionsTotal["rdp"] != 1 {
		t.Errorf("home's status: %+v", home)
	}
	if quiet := agentStatus(t, g, "quiet"); quiet.Connected || quiet.Requests != 0 {
		t.Errorf("quiet's status: %+v", quiet)
	}
	// One name and one back entry, in any case, as the lists have them.
	var one broker.AgentStatus
	adminJSON(t, g, "/tildegate/agents/HOME", &one)
	if one.Name != "home" || !one.Connected || one.Address != home.Address || one.Agent != home.Agent || !one.Since.Equal(*home.Since) ||
		one.BackConnections != home.BackConnections || one.Requests < home.Requests || one.SessionsTotal["rdp"] != 1 {
		t.Errorf("/tildegate/agents/HOME: %+v, the list's: %+v", one, home)
	}
	var web gateway.NameStatus
	adminJSON(t, g, "/tildegate/names/Web", &web)
	if web.Name != "web" || strings.Join(web.Kinds, ",") != "direct" || len(web.Upstreams) != 1 || web.Upstreams[0].Address != local ||
		!strings.HasPrefix(web.DefinedIn, g.BalancePath+":1:") {
		t.Errorf("/tildegate/names/Web: %+v", web)
	}

	// Reloads keep the metrics: a config change, then a balance.bin edit.
	if err := g.Reload(strings.Replace(g.Config(), `respond "gateway"`, `respond "gateway 2"`, -1)); err != nil {
		t.Fatal(err)
	}
	g.WriteBalance(fmt.Sprintf("/~~web=%s;\nSSL /~~home=pw#:*;\n/~~quiet=pw2#:*;\n/~~idle=pw3#:*;\n/~~extra=%s;\n", local, local))
	g.Log.WaitFor(10*time.Second, 0, "balance files reloaded")
	after := g.Metrics(t)
	for _, c := range []struct {
		family string
		labels []string
	}{
		{"tildegate_requests_total", []string{"name", "home"}},
		{"tildegate_tunnel_bytes_total", []string{"name", "home", "direction", "from_agent"}},
		{"tildegate_rdp_bytes_total", []string{"name", "home", "direction", "from_client"}},
		{"tildegate_registrations_total", []string{"result", "accepted"}},
	} {
		was, _ := e2e.Metric(families, c.family, c.labels...)
		now, ok := e2e.Metric(after, c.family, c.labels...)
		if !ok || now < was {
			t.Errorf("after the reloads %s%v = %v (present %v), was %v", c.family, c.labels, now, ok, was)
		}
	}
	if v, _ := e2e.Metric(after, "tildegate_names", "kind", "direct"); v != 2 {
		t.Errorf("after the balance.bin edit, %v direct names, want 2", v)
	}

	// Bad admin requests.
	for _, c := range []struct {
		method, path string
		status       int
		says         string
	}{
		{"POST", "/tildegate/agents/home/disconnect?hold=soon", http.StatusBadRequest, "want a duration"},
		{"POST", "/tildegate/agents/nobody/disconnect", http.StatusNotFound, "no back entry"},
		{"GET", "/tildegate/agents/home/disconnect", http.StatusMethodNotAllowed, "use POST"},
		{"POST", "/tildegate/agents/home/reboot", http.StatusNotFound, "want /tildegate/agents/NAME or /tildegate/agents/NAME/disconnect"},
		{"GET", "/tildegate/agents/", http.StatusNotFound, "want /tildegate/agents/NAME"},
		{"GET", "/tildegate/agents/nobody", http.StatusNotFound, `no back entry named \"nobody\"`},
		{"GET", "/tildegate/agents/web", http.StatusNotFound, `no back entry named \"web\"`},
		{"POST", "/tildegate/agents/home", http.StatusMethodNotAllowed, "use GET"},
		{"GET", "/tildegate/agents/home/", http.StatusNotFound, "want /tildegate/agents/NAME"},
		{"GET", "/tildegate/names/nobody", http.StatusNotFound, `no name \"nobody\"`},
		{"GET", "/tildegate/names/web/x", http.StatusNotFound, "want /tildegate/names/NAME"},
		{"DELETE", "/tildegate/names/web", http.StatusMethodNotAllowed, "use GET"},
	} {
		if status, body := adminPost(t, g, c.method, c.path); status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.method, c.path, status, body, c.status, c.says)
		}
	}
	if res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/tildegate/agents/home", g.Admin), "", nil); err != nil {
		t.Error(err)
	} else if res.Body.Close(); res.Header.Get("Allow") != "GET" {
		t.Errorf("a 405's Allow: %q, want GET", res.Header.Get("Allow"))
	}

	// Hold the agent out for 3 s: it is dropped, refused with the time
	// left, waits it out, and comes back.
	registered := agent.Log.Count("registered", "home")
	status, body := adminPost(t, g, "POST", "/tildegate/agents/home/disconnect?hold=3s")
	var res struct {
		Connected bool       `json:"connected"`
		HeldUntil *time.Time `json:"held_until"`
	}
	if err := json.Unmarshal([]byte(body), &res); status != http.StatusOK || err != nil || !res.Connected || res.HeldUntil == nil {
		t.Fatalf("disconnect?hold=3s: %d %s", status, body)
	}
	held := time.Now()
	agent.Log.WaitFor(5*time.Second, 0, "registration refused: held", "as the gateway asked")
	if status, _, _ := e2e.Get(client, g.URL("/~~home/hello")); status != http.StatusBadGateway {
		t.Errorf("a request while the agent is held out: %d, want 502", status)
	}
	if st := agentStatus(t, g, "home"); st.Connected || st.HeldUntil == nil || st.LastRefusal == nil || st.LastRefusal.Code != "held" {
		t.Errorf("home's status while held: %+v", st)
	}
	agent.Log.WaitFor(15*time.Second, registered, "registered", "home")
	if d := time.Since(held); d < 3*time.Second {
		t.Errorf("the agent was back %s after a 3 s hold", d)
	}
	waitServed(t, g.URL("/~~home/hello"), 5*time.Second)
	t.Logf("the agent said: %s", agent.Log.First("registration refused: held"))
}
