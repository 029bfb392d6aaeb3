package gateway

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// prefixWriter puts the response headers that carry URLs and cookie paths
// under the route's /~~name prefix before they reach the client. Bodies are
// never touched.
type prefixWriter struct {
	caddyhttp.ResponseWriterWrapper
	h         *Handler // warns of __Host- cookies
	req       *http.Request
	prefix    string // the route's prefix, e.g. "/~~srv1"
	route     *route
	rewritten bool
}

var prefixWriterPool = sync.Pool{New: func() any { return new(prefixWriter) }}

// getPrefixWriter returns a pooled writer; putPrefixWriter must be called
// once the handler chain has returned.
func getPrefixWriter(h *Handler, w http.ResponseWriter, r *http.Request, rt *route) *prefixWriter {
	pw := prefixWriterPool.Get().(*prefixWriter)
	pw.h = h
	pw.ResponseWriter = w
	pw.req = r
	pw.prefix = rt.prefix
	pw.route = rt
	pw.rewritten = false
	return pw
}

func putPrefixWriter(pw *prefixWriter) {
	*pw = prefixWriter{}
	prefixWriterPool.Put(pw)
}

// WriteHeader rewrites the URL-bearing headers once, before the final status
// line; informational (1xx) responses pass through as they are.
func (pw *prefixWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		pw.rewriteHeaders()
	}
	pw.ResponseWriter.WriteHeader(status)
}

// Write makes sure the headers are rewritten when the body starts without an
// explicit WriteHeader.
func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.rewriteHeaders()
	return pw.ResponseWriter.Write(p)
}

func (pw *prefixWriter) rewriteHeaders() {
	if pw.rewritten {
		return
	}
	pw.rewritten = true
	h := pw.ResponseWriter.Header()
	for _, field := range [...]string{"Location", "Content-Location"} {
		if vals, ok := h[field]; ok {
			for i, v := range vals {
				vals[i] = pw.rewriteURL(v)
			}
		}
	}
	if vals, ok := h["Refresh"]; ok {
		for i, v := range vals {
			vals[i] = pw.rewriteRefresh(v)
		}
	}
	if vals, ok := h["Set-Cookie"]; ok {
		for i, v := range vals {
			vals[i] = pw.rewriteCookie(v)
		}
	}
}

// underPrefix reports whether path already lies under the prefix.
func (pw *prefixWriter) underPrefix(path string) bool {
	n := len(pw.prefix)
	return len(path) >= n && strings.EqualFold(path[:n], pw.prefix) && (len(path) == n || path[n] == '/')
}

// addressed reports whether path already names a gateway route, this one
// or another: a backend that knows the gateway may link to its siblings.
func (pw *prefixWriter) addressed(path string) bool {
	return strings.HasPrefix(path, namePrefix)
}

// rewriteURL puts a root-relative URL, or an absolute one that points at the
// backend itself or at the gateway without the prefix, under the prefix.
// Other URLs (relative ones, other sites) are returned unchanged.
func (pw *prefixWriter) rewriteURL(v string) string {
	if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
		if pw.addressed(v) {
			return v
		}
		return pw.prefix + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "") {
		return v
	}
	backend := pw.route.isBackendHost(u.Host)
	if !backend && !strings.EqualFold(u.Host, pw.req.Host) {
		return v
	}
	if !backend && pw.addressed(u.Path) {
		return v
	}
	u.Scheme = "http"
	if pw.req.TLS != nil {
		u.Scheme = "https"
	}
	u.Host = pw.req.Host
	if u.Path == "" {
		u.Path = "/"
	}
	if !pw.addressed(u.Path) {
		u.Path = pw.prefix + u.Path
		if u.RawPath != "" {
			u.RawPath = pw.prefix + u.RawPath
		}
	}
	return u.String()
}

// rewriteRefresh rewrites the url= part of a Refresh header ("5; url=/next").
func (pw *prefixWriter) rewriteRefresh(v string) string {
	semi := strings.IndexByte(v, ';')
	if semi < 0 {
		return v
	}
	rest := strings.TrimLeft(v[semi+1:], " \t")
	if len(rest) < 4 || !strings.EqualFold(rest[:4], "url=") {
		return v
	}
	target := strings.Trim(rest[4:], `'"`)
	return v[:semi] + "; url=" + pw.rewriteURL(target)
}

// rewriteCookie puts a cookie's Path under the prefix and drops a Domain that
// names the backend, so the browser sends the cookie back through the gateway.
// A __Host- cookie is passed on as it is: browsers require its Path to be
// "/" and refuse it otherwise. It then reaches every name's server; the
// handler warns of it once per name.
func (pw *prefixWriter) rewriteCookie(v string) string {
	if isHostCookie(v) {
		pw.h.warnHostCookie(pw.route.name, v)
		return v
	}
	attrs := strings.Split(v, ";")
	out := attrs[:1]
	changed := false
	for _, a := range attrs[1:] {
		key, val, _ := strings.Cut(strings.TrimSpace(a), "=")
		switch {
		case strings.EqualFold(key, "path") && strings.HasPrefix(val, "/") && !pw.underPrefix(val):
			a = " Path=" + pw.prefix + val
			changed = true
		case strings.EqualFold(key, "domain") && pw.route.isBackendDomain(strings.TrimPrefix(val, ".")):
			changed = true
			continue
		}
		out = append(out, a)
	}
	if !changed {
		return v
	}
	return strings.Join(out, ";")
}

// isBackendHost reports whether hostport names one of the route's upstreams.
func (rt *route) isBackendHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	for _, b := range rt.backendHosts {
		if strings.EqualFold(host, b) || strings.EqualFold(hostport, b) {
			return true
		}
	}
	return false
}

// isBackendDomain reports whether a cookie Domain attribute covers one of
// the route's upstream hosts.
func (rt *route) isBackendDomain(domain string) bool {
	if domain == "" {
		return false
	}
	for _, b := range rt.backendHosts {
		if strings.EqualFold(b, domain) {
			return true
		}
		if len(b) > len(domain) && b[len(b)-len(domain)-1] == '.' && strings.EqualFold(b[len(b)-len(domain):], domain) {
			return true
		}
	}
	return false
}
