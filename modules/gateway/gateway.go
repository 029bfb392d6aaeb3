// Package gateway is the Caddy HTTP handler http.handlers.tildegate: it routes
// /~~name requests to the servers of a farm through Caddy's reverse proxy.
package gateway

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/tildegate/tildegate/modules/broker"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// namePrefix starts every routed path: /~~name/...
const namePrefix = "/~~"

// Handler routes requests whose path starts with /~~name to the server
// named name, with the prefix stripped; other requests go on to the next
// handler. Names come from inline servers and from TSplus balance.bin files,
// which are watched and reloaded when they change.
type Handler struct {
	// BalanceFiles are TSplus balance.bin files, read as they are and
	// reloaded when they change.
	BalanceFiles []BalanceFile `json:"balance_files,omitempty"`

	// Servers maps a name to the reverse_proxy handler that serves it: the
	// same JSON as Caddy's reverse_proxy handler (upstreams, load_balancing,
	// health_checks, transport, ...) without the "handler" key.
	Servers map[string]json.RawMessage `json:"servers,omitempty"`

	// Agents maps a name to a back entry defined here rather than in a
	// balance file: a server that connects out to the gateway through
	// tildegate-agent.
	Agents map[string]AgentEntry `json:"agents,omitempty"`

	// RDP maps a name to the host:port addresses that native RDP for it
	// goes to, like balance.bin RDPPORT lines. The name may be one of
	// Servers or Agents, or stand alone; without RDP targets, RDP goes to
	// a name's agent or to the host and port of its servers.
	RDP map[string][]string `json:"rdp,omitempty"`

	// Tunnel tunes the back connections of every back entry.
	Tunnel *TunnelConfig `json:"tunnel,omitempty"`

	// CAFile is a PEM file of CA certificates that balance.bin SSL_STRICT
	// entries trust instead of the system roots.
	CAFile string `json:"ca_file,omitempty"`

	// PollInterval is how often balance files are checked for changes when
	// file system notifications miss them. Default: 1s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`

	// InstanceID names this gateway in its challenges, so that an agent
	// that reaches it at two addresses or names holds one registration per
	// name on it. Each gateway of a cluster needs its own. Default: random
	// per process.
	InstanceID string `json:"instance_id,omitempty"`

	ctx     caddy.Context
	logger  *zap.Logger
	broker  *broker.Broker
	tables  *tableRef
	files   *fileSet
	stopped chan struct{}

	// hostCookies holds the lower-case names whose server was seen to
	// set a __Host- cookie, warned of once; see warnHostCookie.
	hostCookies *sync.Map
}

// BalanceFile is one balance.bin file and the reverse proxy options that
// apply to its entries.
type BalanceFile struct {
	// Path of the file.
	Path string `json:"path"`

	// Proxy is reverse_proxy handler JSON (load_balancing, health_checks,
	// transport, headers, ...) applied to every entry of the file. It must
	// not name upstreams: the file does.
	Proxy json.RawMessage `json:"proxy,omitempty"`
}

// AgentEntry is a back entry: the agent that serves the name must prove
// that it knows Password.
type AgentEntry struct {
	// Password the agent must prove; placeholders such as {env.HOME_PW}
	// or {file./etc/tildegate/home.pw} keep it out of the config.
	Password string `json:"password"`

	// Allow is the address filter of balance.bin back entries: an IPv4
	// address ("1.2.3.4"), a prefix ("51.254.*") or a DNS name resolved when
	// the agent connects. Empty allows any address.
	Allow string `json:"allow,omitempty"`

	// RequireTLS refuses agents that connect without TLS.
	RequireTLS bool `json:"require_tls,omitempty"`

	// Proxy is reverse_proxy handler JSON (headers, timeouts, http transport
	// options) for the name's requests; upstreams come from the agent.
	Proxy json.RawMessage `json:"proxy,omitempty"`
}

// TunnelConfig tunes the back connections and the sessions through them.
type TunnelConfig struct {
	// AliveInterval is how long either side stays silent on a control
	// connection before it sends an alive frame. Default: 20s.
	AliveInterval caddy.Duration `json:"alive_interval,omitempty"`
	// DeadAfter is how long a silent control connection lives before it is
	// closed and its name freed. Default: 60s.
	DeadAfter caddy.Duration `json:"dead_after,omitempty"`
	// BackWait is how long opening a session through the agent may take
	// before the request is answered 504. Default: 10s.
	BackWait caddy.Duration `json:"back_wait,omitempty"`
	// TicketTTL is how long a ticket stays valid. Default: 10s.
	TicketTTL caddy.Duration `json:"ticket_ttl,omitempty"`
	// BackIdleTimeout is how long a name with no session open keeps its
	// multiplexed back connections after its last session: an idle agent
	// then costs its control connection alone, and the name's next session
	// pays for one back connection's set-up. Default: 5m.
	BackIdleTimeout caddy.Duration `json:"back_idle_timeout,omitempty"`
	// MaxSessions limits the web sessions (the reverse proxy's connections
	// through the agent: a websocket, or a keep-alive connection that
	// carries requests) open at once per name; a request beyond it is
	// answered 503 at once. Default: 4096.
	MaxSessions int `json:"max_sessions,omitempty"`
	// MaxBackConns is the former name of MaxSessions, from when each
	// session had a back connection of its own: still read, with a
	// warning.
	MaxBackConns int `json:"max_back_conns,omitempty"`
	// MaxPendingTickets is accepted and ignored, with a warning: tickets
	// now only open the few multiplexed back connections of a name.
	MaxPendingTickets int `json:"max_pending_tickets,omitempty"`
	// HandshakeRate is how many agents' control handshakes a second the
	// gateway process starts, whatever handler they reach: beyond it an
	// agent is refused busy (503) with a Retry-After that spreads those
	// turned away over the time needed to take them all, and comes back
	// then. It keeps a restart with thousands of agents from spending the
	// gateway's CPU and memory on handshakes at once. It is one value for
	// the process: set it in one place; the handler provisioned last
	// sets it. Default: 250 per core.
	HandshakeRate int `json:"handshake_rate,omitempty"`
}

// handshakeRate is the configured handshake rate, 0 for the default.
func (c *TunnelConfig) handshakeRate() int {
	if c == nil {
		return 0
	}
	return c.HandshakeRate
}

// warnDeprecated logs the tunnel options that are no longer what they
// were.
func (c *TunnelConfig) warnDeprecated(log *zap.Logger) {
	if c == nil {
		return
	}
	if c.MaxBackConns > 0 {
		log.Warn("tunnel: max_back_conns is now called max_sessions: sessions through an agent are multiplexed "+
			"over a few back connections; the value is read as max_sessions", zap.Int("max_back_conns", c.MaxBackConns))
	}
	if c.MaxPendingTickets > 0 {
		log.Warn("tunnel: max_pending_tickets is ignored: tickets only open the few multiplexed back connections of a name")
	}
}

// tunnelSettings is the broker's form of the tunnel config.
func (h *Handler) tunnelSettings() broker.Settings {
	c := h.Tunnel
	if c == nil {
		c = new(TunnelConfig)
	}
	return broker.Settings{
		Alive:       time.Duration(c.AliveInterval),
		Dead:        time.Duration(c.DeadAfter),
		BackWait:    time.Duration(c.BackWait),
		TicketTTL:   time.Duration(c.TicketTTL),
		MaxSessions: cmp.Or(c.MaxSessions, c.MaxBackConns),
		IdleTimeout: time.Duration(c.BackIdleTimeout),
	}.WithDefaults()
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tildegate",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision reads the balance files, builds the routing table and starts
// watching the files. A file that does not parse refuses the config.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	h.hostCookies = new(sync.Map)
	h.tables = new(tableRef)
	h.broker = broker.Acquire(h.logger)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering the metrics: %w", err)
	}
	if h.PollInterval <= 0 {
		h.PollInterval = caddy.Duration(time.Second)
	}
	paths := make([]string, len(h.BalanceFiles))
	for i, bf := range h.BalanceFiles {
		if bf.Path == "" {
			return fmt.Errorf("balance_files[%d]: path is empty", i)
		}
		if err := checkTemplate(bf.Proxy); err != nil {
			return fmt.Errorf("balance file %s: proxy: %w", bf.Path, err)
		}
		paths[i] = bf.Path
	}
	for name, a := range h.Agents {
		if err := checkTemplate(a.Proxy); err != nil {
			return fmt.Errorf("agent %s: proxy: %w", name, err)
		}
	}
	h.Tunnel.warnDeprecated(h.logger)
	if h.Tunnel != nil && h.Tunnel.HandshakeRate < 0 {
		return fmt.Errorf("tunnel: handshake_rate must be positive, not %d", h.Tunnel.HandshakeRate)
	}
	h.broker.SetHandshakeRate(h.Tunnel.handshakeRate())
	if err := broker.SetInstance(h.InstanceID); err != nil {
		return fmt.Errorf("instance_id: %w", err)
	}
	if s := h.tunnelSettings(); s.Alive >= s.Dead {
		return fmt.Errorf("tunnel: alive_interval (%s) must be shorter than dead_after (%s)", s.Alive, s.Dead)
	}
	h.files = newFileSet(paths)
	if _, err := h.files.read(); err != nil {
		return err
	}
	t, err := h.buildTable(h.files.entries(), nil)
	if err != nil {
		return err
	}
	h.tables.swap(t)
	registerRDP(h)
	if len(paths) > 0 {
		h.stopped = make(chan struct{})
		go h.watch(paths)
	}
	return nil
}

// Cleanup stops the file watcher and retires the routing table; requests
// and websockets still running on it finish first, and requests that the
// old server still takes during a reload are served by it.
func (h *Handler) Cleanup() error {
	if h.stopped != nil {
		<-h.stopped
	}
	unregisterRDP(h)
	h.tables.close()
	if h.broker != nil {
		broker.Release()
	}
	return nil
}

// reload re-reads the balance files and, if any changed, swaps in a new
// table. A file that no longer parses leaves the current table in force.
// Only the watcher calls it.
func (h *Handler) reload() {
	changed, err := h.files.read()
	if err != nil {
		h.logger.Error("balance file not loaded; the last good table stays in force", zap.Error(err))
		return
	}
	if !changed {
		return
	}
	t, err := h.buildTable(h.files.entries(), h.tables.current.Load())
	if err != nil {
		h.logger.Error("balance files not loaded; the last good table stays in force", zap.Error(err))
		return
	}
	h.tables.swap(t)
	h.logger.Info("balance files reloaded", zap.Strings("files", h.files.paths), zap.Int("names", len(t.routes)))
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if !strings.HasPrefix(path, namePrefix) {
		return next.ServeHTTP(w, r)
	}
	end := strings.IndexByte(path[len(namePrefix):], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += len(namePrefix)
	}
	prefix, rest := path[:end], path[end:]
	name := prefix[len(namePrefix):]

	// Before anything else, upgrades included: the operator's matchers
	// saw the cleaned path, so /~~home/../x passed a guard on /~~home*,
	// and the name must not come from a path they did not see.
	if !cleanPath(path) {
		http.Error(w, "tildegate: the path has . or .. segments", http.StatusBadRequest)
		return nil
	}

	if broker.IsUpgrade(r) {
		h.broker.ServeUpgrade(w, r, name)
		return nil
	}

	t := h.tables.acquire()
	rt := t.routes[lookupKey(name)]
	if rt != nil {
		rt.hold()
		defer rt.release()
	}
	t.release()
	switch {
	case rt == nil:
		http.Error(w, fmt.Sprintf("tildegate: no server named %q", name), http.StatusNotFound)
		return nil
	case rest == "" || prefix != rt.prefix:
		// The slash makes relative links of a portal work; one spelling of
		// the name keeps cookie paths, which are case-sensitive, matching.
		target := rt.prefix + rest
		if rest == "" {
			target += "/"
		}
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
		return nil
	case rt.back != nil && !h.broker.Connected(rt.name):
		h.broker.CountRequest(rt.name)
		h.broker.CountUnserved(rt.name, broker.UnservedNoAgent)
		http.Error(w, "tildegate: no agent connected for "+rt.name, http.StatusBadGateway)
		return nil
	}
	proxy, err := rt.handler()
	switch {
	case errors.Is(err, errRetired):
		http.Error(w, "tildegate: the configuration is being replaced; try again", http.StatusServiceUnavailable)
		return nil
	case err != nil:
		h.logger.Error("provisioning the reverse proxy of a name", zap.String("name", rt.name), zap.Error(err))
		http.Error(w, "tildegate: "+rt.name+" cannot be served", http.StatusBadGateway)
		return nil
	case proxy == nil:
		http.Error(w, "tildegate: "+rt.name+" has no web entry", http.StatusNotFound)
		return nil
	}

	stripPrefix(r, rest)
	// The route's own slice, shared by every request: the reverse proxy
	// clones the request's headers before anything can change them.
	r.Header["X-Forwarded-Prefix"] = rt.prefixHeader
	pw := getPrefixWriter(h, w, r, rt)
	defer putPrefixWriter(pw)
	if rt.back == nil {
		return proxy.ServeHTTP(pw, r, next)
	}
	h.broker.CountRequest(rt.name)
	err = proxy.ServeHTTP(pw, r, next)
	var (
		refused *broker.SessionError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &refused):
		// A limit, or a local service the agent cannot reach: the client
		// is told which at once; the broker has logged it.
		if refused.Status() == http.StatusServiceUnavailable {
			h.broker.CountUnserved(rt.name, broker.UnservedLimit)
		}
		http.Error(w, "tildegate: "+refused.Error(), refused.Status())
		return nil
	case errors.As(err, &netErr) && netErr.Timeout():
		h.broker.CountUnserved(rt.name, broker.UnservedTimeout)
	}
	return err
}

// checkTemplate refuses reverse proxy options that name upstreams where the
// upstreams come from elsewhere.
func checkTemplate(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var rp reverseproxy.Handler
	if err := caddy.StrictUnmarshalJSON(raw, &rp); err != nil {
		return err
	}
	if len(rp.Upstreams) > 0 || rp.DynamicUpstreamsRaw != nil {
		return fmt.Errorf("upstreams are not allowed here: they come from the entries")
	}
	return nil
}

// lookupKey is the table key for a name: names are ASCII and match
// case-insensitively. It allocates only when the name has upper-case
// letters.
func lookupKey(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j, c := range b {
				if 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// cleanPath reports whether path has no "." or ".." segment, which would
// let /~~a/../~~b reach a while path matchers, which clean paths, see b.
func cleanPath(path string) bool {
	for i := 0; i < len(path); i++ {
		if path[i] != '.' || path[i-1] != '/' {
			continue
		}
		seg := path[i:]
		if end := strings.IndexByte(seg, '/'); end >= 0 {
			seg = seg[:end]
		}
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// stripPrefix removes the /~~name prefix from the request's path, keeping
// the escaped form when it still matches.
func stripPrefix(r *http.Request, rest string) {
	r.URL.Path = rest
	raw := r.URL.RawPath
	if raw == "" {
		return
	}
	r.URL.RawPath = ""
	if slash := strings.IndexByte(raw[1:], '/'); slash >= 0 {
		rawRest := raw[slash+1:]
		if unescaped, err := url.PathUnescape(rawRest); err == nil && unescaped == rest {
			r.URL.RawPath = rawRest
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
