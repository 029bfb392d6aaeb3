package tunnel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/modules/gateway"
)

// TestStatusPage mounts tildegate_status on /status of the gateway's plain
// site and opens it in headless Chromium with an agent connected. Must
// hold: the page shows the agent connected, with its address and version;
// after traffic through the agent, the same page load, refreshed by its own
// script under its Content-Security-Policy, shows the requests and bytes
// grown; the script puts markup from the status into the page as text; a
// slow refresh spaces the next ones out; a failed refresh says so. The JSON
// at the same address is the admin API's.
func TestStatusPage(t *testing.T) {
	chromium := lookChromium(t)
	local := e2e.LocalService(t, "status").Listener.Addr().String()
	g := startWithStatusPage(t, "SSL /~~home=pw#:*;\n/~~web="+local+";\n")
	agent := env.StartAgent(t, "agent", e2e.BackbalanceLine("home", "pw", g.Address(), local))
	agent.Log.WaitFor(10*time.Second, 0, "registered", "home")
	url := fmt.Sprintf("http://%s/status", g.PlainAddress())

	// The JSON at the page's address.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st gateway.Status
	err = json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if err != nil || res.Header.Get("Cache-Control") != "no-store" || len(st.Agents) != 1 || !st.Agents[0].Connected || len(st.Names) != 2 {
		t.Fatalf("the JSON: %v %v %+v", err, res.Header, st)
	}
	if home := agentStatus(t, g, "home"); home.Address != st.Agents[0].Address || home.Agent != st.Agents[0].Agent {
		t.Errorf("the page's JSON %+v differs from the admin API's %+v", st.Agents[0], home)
	}

	page := openInChromium(t, chromium, url)
	first := waitPage(t, page, "home", 10*time.Second, "the page with the agent connected", func(r pageReading) bool {
		return r.Agent != nil && r.Agent["state"].Text == "● connected"
	})
	if a := first.Agent; a["address"].Text != st.Agents[0].Address || a["address"].Text != "127.0.0.1" ||
		!strings.HasPrefix(a["agent"].Text, "tildegate-agent/") || a["tls"].Text != "TLS, bound" {
		t.Errorf("the agent's row: %+v", a)
	}
	if first.Name == nil || first.Name["kinds"].Text != "back" {
		t.Errorf("the row of the name home: %+v", first.Name)
	}
	if !first.Styled {
		t.Error("the page's style was not applied: does the Content-Security-Policy allow it?")
	}
	page.eval(t, "window.statusTestMarker = true", nil)

	// Traffic through the agent; the page, not reloaded, shows it.
	const downloads, size = 4, 300000
	client := env.Client()
	for range downloads {
		if status, body, err := e2e.Get(client, g.URL(fmt.Sprintf("/~~home/download?size=%d", size))); err != nil || status != http.StatusOK || len(body) != size {
			t.Fatalf("through the agent: %d, %d bytes, %v", status, len(body), err)
		}
	}
	requests, bytes := first.Agent.count(t, "requests"), first.Agent.count(t, "bytes_from_agent")
	second := waitPage(t, page, "home", 6*time.Second, "the counters grown", func(r pageReading) bool {
		return r.Agent != nil && r.Agent.count(t, "requests") >= requests+downloads && r.Agent.count(t, "bytes_from_agent") >= bytes+downloads*size
	})
	if !second.Marker {
		t.Error("the page was loaded again instead of refreshed by its script")
	}
	if was, now := first.Agent["bytes_from_agent"].Text, second.Agent["bytes_from_agent"].Text; was == now || !strings.HasSuffix(now, " MiB") {
		t.Errorf("bytes from the agent shown as %q, then %q", was, now)
	}
	t.Logf("the page showed %s requests and %s from the agent, then %s and %s",
		first.Agent["requests"].Text, first.Agent["bytes_from_agent"].Text, second.Agent["requests"].Text, second.Agent["bytes_from_agent"].Text)

	// The script's rendering of hostile text: fetch answers a made-up status.
	const hostile = `</td><script>alert("x")</script><img src=x onerror=alert(1)>`
	fake, _ := json.Marshal(map[string]any{
		"names": []any{map[string]any{"name": "evil" + hostile, "kinds": []string{"back"}, "defined_in": hostile}},
		"agents": []any{map[string]any{"name": "evil" + hostile, "origin": hostile, "connected": false, "sessions": map[string]int{}, "sessions_total": map[string]int{},
			"last_refusal": map[string]any{"at": time.Now(), "code": "bad-hello", "reason": hostile, "source": "198.51.100.1"}}},
	})
	fakeJS, _ := json.Marshal(string(fake))
	page.eval(t, `window.alerted = false; window.alert = () => { window.alerted = true; };
		window.fetch = () => Promise.resolve(new Response(`+string(fakeJS)+`, {headers: {"Content-Type": "application/json"}}))`, nil)
	evil := waitPage(t, page, "evil"+hostile, 6*time.Second, "the made-up status", func(r pageReading) bool { return r.Agent != nil })
	if a := evil.Agent; a["name"].Text != "evil"+hostile+hostile || a["state"].Text != "○ not connected" ||
		!strings.HasPrefix(a["last_refusal"].Text, "bad-hello "+hostile) || !strings.HasSuffix(a["last_refusal"].Text, " UTC from 198.51.100.1") {
		t.Errorf("the made-up agent's row: %+v", a)
	}
	if evil.Name == nil || evil.Name["defined_in"].Text != hostile {
		t.Errorf("the made-up name's row: %+v", evil.Name)
	}
	if evil.Markup != 0 || evil.Alerted {
		t.Errorf("markup from the status became elements: %d script or img elements in the tables, alert called %v", evil.Markup, evil.Alerted)
	}

	// A slow refresh, as with thousands of names, waits ten times as long
	// before the next; a quick one 2 s again.
	page.eval(t, `window.fetchDelay = 600; window.fetchCalls = []; window.fetch = () => {
		window.fetchCalls.push(performance.now());
		const delay = window.fetchDelay;
		return new Promise(ok => setTimeout(() => ok(new Response(`+string(fakeJS)+`, {headers: {"Content-Type": "application/json"}})), delay));
	}`, nil)
	calls := func(n int, within time.Duration) []float64 {
		t.Helper()
		var at []float64
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if page.eval(t, "window.fetchCalls", &at); len(at) >= n {
				return at
			}
		}
		t.Fatalf("%d refreshes within %s, want %d", len(at), within, n)
		return nil
	}
	calls(1, 5*time.Second)
	page.eval(t, "window.fetchDelay = 0", nil)
	at := calls(3, 15*time.Second)
	if slow, quick := at[1]-at[0], at[2]-at[1]; slow < 5000 || quick >= 5000 {
		t.Errorf("refreshes %.0f ms after one that took 600 ms, %.0f ms after a quick one; want about 6600, then about 2000", slow, quick)
	}

	// A refresh that fails says so.
	page.eval(t, `window.fetch = () => Promise.reject(new Error("gateway gone"))`, nil)
	waitPage(t, page, "evil"+hostile, 6*time.Second, "the failed refresh", func(r pageReading) bool {
		return r.Problem == " · not updated: gateway gone"
	})
}

// BenchmarkStatusPage10000 opens the status page in headless Chromium and
// has its script render a made-up status of 10,000 names and as many
// connected agents, again and again: s/refresh is what one refresh costs
// the browser (fetching, parsing and building the rows; the layout after
// is not counted), s/between-refreshes how far apart they come.
func BenchmarkStatusPage10000(b *testing.B) {
	chromium := lookChromium(b)
	g := startWithStatusPage(b, "")
	page := openInChromium(b, chromium, fmt.Sprintf("http://%s/status", g.PlainAddress()))
	for loaded, deadline := false, time.Now().Add(30*time.Second); !loaded; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the status page did not load within 30s")
		}
		page.eval(b, `document.readyState === "complete" && document.getElementById("summary") !== null`, &loaded)
	}
	page.eval(b, `const now = new Date().toISOString(), ns = [], as = [];
		for (let i = 0; i < 10000; i++) {
			ns.push({name: "b" + i, kinds: ["back"], defined_in: "/etc/tildegate/balance.bin:" + (i + 1) + ":1"});
			as.push({name: "b" + i, origin: "/etc/tildegate/balance.bin:" + (i + 1) + ":1", connected: true, address: "127.0.3.4",
				agent: "tildegate-agent/1.0", since: now, last_heard: now, tls: true, channel_binding: true, back_connections: 0,
				sessions: {http: 0, rdp: 0}, sessions_total: {http: 0, rdp: 0}, requests: 0, bytes_to_agent: 0, bytes_from_agent: 0});
		}
		window.fake = JSON.stringify({names: ns, agents: as}); window.fetchCalls = [];
		window.fetch = () => {
			window.fetchCalls.push(performance.now());
			return Promise.resolve(new Response(window.fake, {headers: {"Content-Type": "application/json"}}));
		}`, nil)
	var at []float64
	for deadline := time.Now().Add(5 * time.Minute); len(at) < 1+b.N; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d refreshes in 5 minutes, want %d", len(at), 1+b.N)
		}
		page.eval(b, "window.fetchCalls", &at)
	}
	var rows int
	if page.eval(b, "document.querySelectorAll('#agents tbody tr').length", &rows); rows != 10000 {
		b.Fatalf("%d rows of agents, want 10000", rows)
	}
	// The page waits ten times as long as a refresh took: the gap between
	// two is eleven of them.
	gap := (at[len(at)-1] - at[0]) / float64(len(at)-1) / 1000
	b.ReportMetric(gap/11, "s/refresh")
	b.ReportMetric(gap, "s/between-refreshes")
}

// lookChromium returns the path of Chromium, which the page's tests need.
func lookChromium(t testing.TB) string {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("install chromium (make deps)")
	}
	return chromium
}

// startWithStatusPage starts a gateway with balance and tildegate_status
// on /status of its plain site.
func startWithStatusPage(t testing.TB, balance string) *e2e.Gateway {
	g := e2e.StartGateway(t, env, balance)
	withPage := strings.ReplaceAll(g.Config(), `respond "gateway"`, "handle /status* {\n\t\ttildegate_status\n\t}\n\trespond \"gateway\"")
	if err := g.Reload(withPage); err != nil {
		t.Fatal(err)
	}
	return g
}

// pageRow is a table row of the page: the text of each cell by its
// data-field, with its data-value.
type pageRow map[string]struct {
	Text  string `json:"text"`
	Value string `json:"value"`
}

// count is the exact number of a counter cell.
func (r pageRow) count(t *testing.T, field string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r[field].Value, 10, 64)
	if err != nil {
		t.Fatalf("the %s cell: %+v: %v", field, r[field], err)
	}
	return n
}

// pageReading is what the page shows of one name.
type pageReading struct {
	Agent   pageRow `json:"agent"` // its row in the back entries
	Name    pageRow `json:"name"`  // its row in the names
	Problem string  `json:"problem"`
	// Styled reports the page's style applied, Marker a mark the test
	// left on the page still there, Markup the script and img elements
	// in the tables, Alerted a call of alert.
	Styled  bool `json:"styled"`
	Marker  bool `json:"marker"`
	Markup  int  `json:"markup"`
	Alerted bool `json:"alerted"`
}

// readPageJS reads a pageReading; %s is the name, as a JavaScript string.
const readPageJS = `(() => {
	const row = (table, name) => {
		const tr = [...document.querySelectorAll("#" + table + " tbody tr")].find(r => r.dataset.name === name);
		if (!tr) return null;
		const out = {};
		for (const td of tr.querySelectorAll("td[data-field]")) out[td.dataset.field] = {text: td.textContent, value: td.dataset.value || ""};
		return out;
	};
	const name = %s;
	if (document.readyState !== "complete" || !document.getElementById("agents")) return {};
	return {
		agent: row("agents", name), name: row("names", name),
		problem: document.getElementById("problem").textContent,
		styled: getComputedStyle(document.querySelector("table")).borderCollapse === "collapse",
		marker: window.statusTestMarker === true,
		markup: document.querySelectorAll("main script, main img").length,
		alerted: window.alerted === true,
	};
})()`

// waitPage reads the page for name until ok holds, and fails the test after
// within.
func waitPage(t *testing.T, page *devtools, name string, within time.Duration, what string, ok func(pageReading) bool) pageReading {
	t.Helper()
	quoted, _ := json.Marshal(name)
	deadline := time.Now().Add(within)
	for {
		var r pageReading
		page.eval(t, fmt.Sprintf(readPageJS, quoted), &r)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not shown within %s; the page shows %+v", what, within, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// devtools is a page of a browser driven over the DevTools protocol.
type devtools struct {
	ws     *websocket.Conn
	lastID int
}

// openInChromium starts headless Chromium on url and connects to its page.
func openInChromium(t testing.TB, chromium, url string) *devtools {
	t.Helper()
	p := e2e.StartProcess(t, "chromium", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-extensions",
		"--remote-debugging-port=0", "--user-data-dir="+t.TempDir(), url)
	p.Log.WaitFor(15*time.Second, 0, "DevTools listening on ws://")
	line := p.Log.First("DevTools listening on ws://")
	host, _, _ := strings.Cut(line[strings.Index(line, "ws://")+len("ws://"):], "/")

	// The page's own websocket, from the list of targets.
	var target string
	for deadline := time.Now().Add(10 * time.Second); target == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Chromium shows no page at %s", url)
		}
		res, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			continue
		}
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		err = json.NewDecoder(res.Body).Decode(&targets)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
				target = tg.WebSocketDebuggerURL
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, target, nil)
	if err != nil {
		t.Fatalf("the DevTools websocket of the page: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &devtools{ws: ws}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into v, unless v is nil. It waits up to a minute: the page's
// layout of thousands of rows holds the answer up.
func (d *devtools) eval(t testing.TB, expression string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.lastID++
	call, _ := json.Marshal(map[string]any{"id": d.lastID, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expression, "returnByValue": true}})
	if err := d.ws.Write(ctx, websocket.MessageText, call); err != nil {
		t.Fatalf("DevTools: %v", err)
	}
	for {
		_, msg, err := d.ws.Read(ctx)
		if err != nil {
			t.Fatalf("DevTools: %v", err)
		}
		var res struct {
			ID     int `json:"id"`
			Result struct {
				Result           struct{ Value json.RawMessage }
				ExceptionDetails *struct {
					Exception struct{ Description string }
				}
			}
			Error *struct{ Message string }
		}
		if err := json.Unmarshal(msg, &res); err != nil {
			t.Fatalf("DevTools: %v: %s", err, msg)
		}
		if res.ID != d.lastID {
			continue // an event
		}
		switch {
		case res.Error != nil:
			t.Fatalf("DevTools: %s", res.Error.Message)
		case res.Result.ExceptionDetails != nil:
			t.Fatalf("the page threw %s", res.Result.ExceptionDetails.Exception.Description)
		case v != nil:
			if err := json.Unmarshal(res.Result.Result.Value, v); err != nil {
				t.Fatalf("the page's answer %s: %v", res.Result.Result.Value, err)
			}
		}
		return
	}
}
