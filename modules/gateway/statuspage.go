package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(StatusPage{})
	httpcaddyfile.RegisterHandlerDirective("tildegate_status", parseStatusCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("tildegate_status", httpcaddyfile.Before, "respond")
}

// StatusPage is the HTTP handler http.handlers.tildegate_status: a page
// for the farm's administrators with every name the gateway routes and
// every back entry with its agent, which updates itself every 2 seconds,
// or ten times as long as its last refresh took.
// Browsers get HTML; a request that accepts application/json, or has
// ?format=json, gets the JSON of CurrentStatus, as the admin API serves
// it. Only GET and HEAD are allowed.
//
// The page shows the addresses of servers and agents and the reasons the
// gateway refused agents, so mount it on a path behind authentication; it
// works under any path:
//
//	gateway.example.com {
//	    tildegate {
//	        balance_file /etc/tildegate/balance.bin
//	    }
//	    handle /status* {
//	        basic_auth {
//	            admin <hash from caddy hash-password>
//	        }
//	        tildegate_status
//	    }
//	}
//
// The directive takes no arguments; its place in Caddy's directive order
// is just before respond.
type StatusPage struct {
	// status reads what the page shows: CurrentStatus, once provisioned.
	status func() Status
}

// CaddyModule returns the Caddy module information.
func (StatusPage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tildegate_status",
		New: func() caddy.Module { return new(StatusPage) },
	}
}

// Provision implements caddy.Provisioner.
func (p *StatusPage) Provision(caddy.Context) error {
	p.status = CurrentStatus
	return nil
}

func parseStatusCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(StatusPage)
	return p, p.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tildegate_status [<matcher>]
func (p *StatusPage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Err("tildegate_status takes no options")
	}
	return nil
}

// ServeHTTP answers with the status as JSON or as the HTML page.
func (p *StatusPage) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed,
			fmt.Errorf("method %s not allowed on the status page; use GET or HEAD", r.Method))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	st := p.status()
	if wantsJSON(r) {
		return writeJSON(w, st)
	}
	var page bytes.Buffer
	if err := statusTemplate.Execute(&page, newStatusView(st, time.Now())); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(page.Len()))
	_, err := page.WriteTo(w)
	return err
}

// wantsJSON reports whether the request asks for JSON: ?format=json, or
// an Accept header that names application/json with a higher quality
// than text/html. A browser's Accept, which names text/html and reaches
// JSON only through */*, gets the page.
func wantsJSON(r *http.Request) bool {
	if r.URL.Query().Get("format") == "json" {
		return true
	}
	var jsonQ, htmlQ float64
	for _, field := range r.Header.Values("Accept") {
		for _, mediaRange := range strings.Split(field, ",") {
			mediaType, params, err := mime.ParseMediaType(mediaRange)
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			switch mediaType {
			case "application/json":
				jsonQ = max(jsonQ, q)
			case "text/html":
				htmlQ = max(htmlQ, q)
			}
		}
	}
	return jsonQ > htmlQ
}

// The page is statuspage/page.html with its style and script inline; the
// Content-Security-Policy allows exactly those by their hashes, and the
// script's requests to the page's own origin.
var (
	//go:embed statuspage
	statusFiles    embed.FS
	statusTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
		"bytes": humanBytes,
		"clock": clock,
		"ago":   ago,
		"pair":  sessionPair,
		"join":  strings.Join,
	}).ParseFS(statusFiles, "statuspage/page.html"))
	statusStyle  = mustRead("statuspage/page.css")
	statusScript = mustRead("statuspage/page.js")
	statusCSP    = "default-src 'none'; " +
		"style-src " + cspHash(statusStyle) + "; " +
		"script-src " + cspHash(statusScript) + "; " +
		"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func mustRead(name string) string {
	b, err := statusFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cspHash is the Content-Security-Policy source that allows an inline
// element whose text is s.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// statusView is what page.html renders.
type statusView struct {
	Status
	// Now is when the status was read; Connected counts the back entries
	// whose agent is connected.
	Now       time.Time
	Connected int
	Style     template.CSS
	Script    template.JS
}

func newStatusView(st Status, now time.Time) statusView {
	v := statusView{Status: st, Now: now, Style: template.CSS(statusStyle), Script: template.JS(statusScript)}
	for _, a := range st.Agents {
		if a.Connected {
			v.Connected++
		}
	}
	return v
}

// The formats below are those of page.js, which renders the same tables
// from the JSON.

// humanBytes writes n in bytes up to 1023, then in KiB, MiB, ... with one
// decimal.
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n) / 1024
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// clock writes t in UTC to the second.
func clock(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// ago writes how long before now t was, roughly.
func ago(now, t time.Time) string {
	s := int64(now.Sub(t).Round(time.Second) / time.Second)
	switch {
	case s < 0:
		s = 0
	case s >= 86400:
		return strconv.FormatInt(s/86400, 10) + " d ago"
	case s >= 3600:
		return strconv.FormatInt(s/3600, 10) + " h ago"
	case s >= 60:
		return strconv.FormatInt(s/60, 10) + " min ago"
	}
	return strconv.FormatInt(s, 10) + " s ago"
}

// sessionPair writes session counts by kind as "http / rdp".
func sessionPair(m map[string]int64) string {
	return strconv.FormatInt(m["http"], 10) + " / " + strconv.FormatInt(m["rdp"], 10)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*StatusPage)(nil)
	_ caddyhttp.MiddlewareHandler = (*StatusPage)(nil)
	_ caddyfile.Unmarshaler       = (*StatusPage)(nil)
)
