package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tildegate/tildegate/modules/broker"
	"golang.org/x/net/html"
)

// hostile is text from outside, as a refusal reason may quote it.
const hostile = `</td><script>alert("x")</script><img src=x onerror=alert(1)>`

// testStatus has a direct name and a back entry whose agent is connected
// and was refused once, with hostile text where the page shows text.
func testStatus() Status {
	since := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	heard := since.Add(time.Hour)
	return Status{
		Names: []NameStatus{
			{Name: "web", DefinedIn: "/etc/tildegate/balance.bin:1:1", Kinds: []string{"direct"},
				Upstreams: []UpstreamStatus{{Address: "10.0.0.7:80", Health: "healthy"}}},
			{Name: "home" + hostile, DefinedIn: "config", Kinds: []string{"back", "rdp"}, RDPTargets: []string{"10.0.0.8:3389"}},
		},
		Agents: []broker.AgentStatus{{
			Name: "home" + hostile, Origin: "config", Connected: true, Address: "203.0.113.9:50312",
			Agent: "tildegate-agent/1.0 " + hostile, Since: &since, LastHeard: &heard, TLS: true, Bound: true,
			BackConnections: 2, Sessions: map[string]int64{"http": 3, "rdp": 1}, SessionsTotal: map[string]int64{"http": 40, "rdp": 2},
			Requests: 1234, BytesToAgent: 2048, BytesFromAgent: 5 << 20,
			LastRefusal: &broker.Refusal{At: since, Code: "bad-hello", Reason: "unexpected " + hostile, Source: "198.51.100.1"},
		}},
	}
}

func testStatusPage() *StatusPage {
	return &StatusPage{status: testStatus}
}

// serveStatus runs one request through p.
func serveStatus(t *testing.T, p *StatusPage, req *http.Request) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	err := p.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Fatal("the status page called the next handler")
		return nil
	}))
	return rec, err
}

func TestStatusPageJSONOrHTML(t *testing.T) {
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, c := range []struct {
		target, accept string
		json           bool
	}{
		{"/status", "application/json", true},
		{"/status", "application/json, text/plain, */*", true},
		{"/status", "text/html;q=0.5, application/json", true},
		{"/status?format=json", browser, true},
		{"/status", browser, false},
		{"/status", "", false},
		{"/status", "*/*", false},
		{"/status", "text/html, application/json", false},
		{"/status", "application/json;q=0", false},
		{"/status?format=xml", "", false},
	} {
		req := httptest.NewRequest("GET", c.target, nil)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		rec, err := serveStatus(t, testStatusPage(), req)
		if err != nil {
			t.Fatalf("%s, Accept %q: %v", c.target, c.accept, err)
		}
		ct := rec.Header().Get("Content-Type")
		if c.json != (ct == "application/json") || !c.json && ct != "text/html; charset=utf-8" {
			t.Errorf("%s, Accept %q: Content-Type %q, want JSON %v", c.target, c.accept, ct, c.json)
			continue
		}
		if !c.json {
			continue
		}
		var got Status
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s, Accept %q: %v", c.target, c.accept, err)
		}
		if want := testStatus(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s, Accept %q: the JSON reads back as\n%+v\nwant\n%+v", c.target, c.accept, got, want)
		}
	}
}

// parsePage parses an HTML answer.
func parsePage(t *testing.T, rec *httptest.ResponseRecorder) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// elements returns the elements of the tree under n that match.
func elements(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// cells maps the data-field of each cell of the table row named name to
// its text.
func cells(doc *html.Node, table, name string) map[string]string {
	out := map[string]string{}
	for _, tr := range elements(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-name") == name }) {
		if p := tr.Parent.Parent; attr(p, "id") != table {
			continue
		}
		for _, td := range elements(tr, func(n *html.Node) bool { return n.Data == "td" }) {
			out[attr(td, "data-field")] = text(td)
		}
	}
	return out
}

func TestStatusPageShowsTheStatus(t *testing.T) {
	rec, err := serveStatus(t, testStatusPage(), httptest.NewRequest("GET", "/status", nil))
	if err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, rec)
	web := cells(doc, "names", "web")
	if web["kinds"] != "direct" || web["defined_in"] != "/etc/tildegate/balance.bin:1:1" || web["upstreams"] != "10.0.0.7:80 healthy" || web["rdp_targets"] != "—" {
		t.Errorf("the row of web: %q", web)
	}
	home := cells(doc, "agents", "home"+hostile)
	for field, want := range map[string]string{
		"state":            "● connected",
		"address":          "203.0.113.9:50312",
		"since":            "2025-03-04 05:06:07 UTC",
		"tls":              "TLS, bound",
		"back_connections": "2",
		"sessions":         "3 / 1",
		"sessions_total":   "40 / 2",
		"requests":         "1234",
		"bytes_to_agent":   "2.0 KiB",
		"bytes_from_agent": "5.0 MiB",
		"held_until":       "—",
	} {
		if home[field] != want {
			t.Errorf("the agent's %s: %q, want %q", field, home[field], want)
		}
	}
	if want := "bad-hello unexpected " + hostile + "2025-03-04 05:06:07 UTC from 198.51.100.1"; home["last_refusal"] != want {
		t.Errorf("the agent's last refusal: %q, want %q", home["last_refusal"], want)
	}
	if s := elements(doc, func(n *html.Node) bool { return n.Data == "noscript" }); len(s) != 1 || !strings.Contains(text(s[0]), `http-equiv="refresh" content="5"`) {
		t.Errorf("no <noscript> with a refresh every 5 s")
	}
}

// TestStatusPageEscapes: names, versions and refusal reasons with markup
// show as text; the page's own script is its only script and img none.
func TestStatusPageEscapes(t *testing.T) {
	rec, err := serveStatus(t, testStatusPage(), httptest.NewRequest("GET", "/status", nil))
	if err != nil {
		t.Fatal(err)
	}
	if body := rec.Body.String(); strings.Contains(body, `<script>alert`) || strings.Contains(body, "<img") {
		t.Errorf("markup from the status went into the page as it is")
	}
	doc := parsePage(t, rec)
	if n := len(elements(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "img" })); n != 1 {
		t.Errorf("%d script and img elements, want the page's one script", n)
	}
	home := cells(doc, "agents", "home"+hostile)
	if !strings.HasPrefix(home["name"], "home"+hostile) || !strings.HasSuffix(home["agent"], hostile) || !strings.Contains(home["last_refusal"], hostile) {
		t.Errorf("the text with markup does not show as it is: %q", home)
	}
	if n := cells(doc, "names", "home"+hostile); n["name"] != "home"+hostile {
		t.Errorf("the name with markup shows as %q", n["name"])
	}
}

func TestStatusPageHeaders(t *testing.T) {
	for _, accept := range []string{"text/html", "application/json"} {
		req := httptest.NewRequest("GET", "/status", nil)
		req.Header.Set("Accept", accept)
		rec, err := serveStatus(t, testStatusPage(), req)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"Cache-Control":          "no-store",
			"Vary":                   "Accept",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("Accept %s: %s: %q, want %q", accept, k, got, want)
			}
		}
	}

	rec, err := serveStatus(t, testStatusPage(), httptest.NewRequest("GET", "/status", nil))
	if err != nil {
		t.Fatal(err)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("the Content-Security-Policy allows unsafe sources: %q", csp)
	}
	// The policy allows the page's inline style and script as they are.
	doc := parsePage(t, rec)
	for _, c := range []struct{ element, directive string }{{"style", "style-src"}, {"script", "script-src"}} {
		els := elements(doc, func(n *html.Node) bool { return n.Data == c.element })
		if len(els) != 1 {
			t.Fatalf("%d %s elements, want 1", len(els), c.element)
		}
		if want := c.directive + " " + cspHash(text(els[0])) + ";"; !strings.Contains(csp, want) {
			t.Errorf("the Content-Security-Policy %q does not allow the page's %s: want %q", csp, c.element, want)
		}
	}
}

func TestStatusPageMethods(t *testing.T) {
	rec, err := serveStatus(t, testStatusPage(), httptest.NewRequest("HEAD", "/status", nil))
	if err != nil || rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD: %d %q %v", rec.Code, rec.Header().Get("Content-Type"), err)
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		rec, err := serveStatus(t, testStatusPage(), httptest.NewRequest(method, "/status", strings.NewReader("x")))
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) || he.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %v, want a 405 error", method, err)
		}
		if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
			t.Errorf("%s: Allow %q", method, allow)
		}
		if rec.Body.Len() > 0 {
			t.Errorf("%s: the status went out: %q", method, rec.Body.String())
		}
	}
}

// TestStatusPageCaddyfile: the directive stands in a site block without a
// route, before respond, and takes nothing.
func TestStatusPageCaddyfile(t *testing.T) {
	adapt := func(body string) (string, error) {
		out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(body), nil)
		return string(out), err
	}
	out, err := adapt(":8080 {\n\trespond \"gateway\"\n\ttildegate_status /status*\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	status, respond := strings.Index(out, `"handler":"tildegate_status"`), strings.Index(out, `"handler":"static_response"`)
	if status < 0 || respond < 0 || status > respond {
		t.Errorf("tildegate_status does not come before respond: %s", out)
	}
	if out, err := adapt(":8080 {\n\thandle /status* {\n\t\ttildegate_status\n\t}\n}\n"); err != nil || !strings.Contains(out, `"handler":"tildegate_status"`) {
		t.Errorf("in a handle block: %v %s", err, out)
	}
	for _, bad := range []string{"tildegate_status /status extra", "tildegate_status {\n\t\tinterval 1s\n\t}"} {
		if _, err := adapt(":8080 {\n\t" + bad + "\n}\n"); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestStatusFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Now()
	for d, want := range map[time.Duration]string{-time.Second: "0 s ago", 1400 * time.Millisecond: "1 s ago", 59 * time.Second: "59 s ago",
		90 * time.Second: "1 min ago", 2 * time.Hour: "2 h ago", 50 * time.Hour: "2 d ago"} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}
