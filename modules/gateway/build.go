package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/modules/broker"
)

// Defaults applied to a name's reverse proxy when its configuration leaves
// them unset.
const (
	// defaultFailDuration is how long an upstream that failed is held out.
	defaultFailDuration = 10 * time.Second
	// stickyCookiePrefix names the cookie that keeps a client on one
	// upstream of a name.
	stickyCookiePrefix = "tildegate_"
	// agentUpstreamSuffix makes the upstream address of a back entry: the
	// transport ignores it, but Caddy keys upstream state by it.
	agentUpstreamSuffix = ".agent.tildegate.invalid:80"
)

// routeSpec is a name's definition before it is provisioned.
type routeSpec struct {
	name   string
	origin string
	proxy  *reverseproxy.Handler // nil: no web entry
	// backLine is the balance.bin line of a back entry, back the entry as
	// the broker checks it.
	backLine *balancebin.Entry
	back     *broker.Entry
	rdp      []balancebin.HostPort
	// inline is set for a name defined in the handler's config rather than
	// in a balance file.
	inline bool
	// lazyGroup names the routes whose reverse proxies differ only by the
	// name: once one of them provisioned, which proves their options
	// sound, the others provision on first use. Empty: always at once.
	lazyGroup string
}

// buildTable turns the inline servers and the balance files' entries into a
// provisioned table. Routes of prev whose definition did not change are
// shared with it rather than provisioned again. On error nothing new stays
// provisioned.
func (h *Handler) buildTable(files [][]balancebin.Entry, prev *table) (*table, error) {
	specs, err := h.routeSpecs(files)
	if err != nil {
		return nil, err
	}
	t := &table{routes: make(map[string]*route, len(specs)), broker: h.broker}
	proven := make(map[string]bool) // lazy groups with a provisioned route
	for _, key := range slices.Sorted(maps.Keys(specs)) {
		spec := specs[key]
		fingerprint, err := spec.fingerprint(key)
		if err != nil {
			t.cleanup()
			return nil, err
		}
		if old := prev.route(key); old != nil && old.fingerprint == fingerprint {
			old.hold()
			t.routes[key] = old
		} else if t.routes[key], err = h.provisionRoute(spec, fingerprint, proven[spec.lazyGroup]); err != nil {
			delete(t.routes, key)
			t.cleanup()
			return nil, err
		}
		if spec.lazyGroup != "" {
			proven[spec.lazyGroup] = true
		}
		if spec.back != nil {
			t.backEntries = append(t.backEntries, *spec.back)
		}
	}
	h.broker.Claim(t.backEntries)
	return t, nil
}

// route returns the table's route for key, if t is a table and has one.
func (t *table) route(key string) *route {
	if t == nil {
		return nil
	}
	return t.routes[key]
}

// fingerprint applies the defaults to the spec's proxy and returns the
// whole definition as one string.
func (spec *routeSpec) fingerprint(key string) (string, error) {
	if spec.proxy != nil {
		applyDefaults(spec.proxy, key)
	}
	b, err := json.Marshal(struct {
		Name  string
		Proxy *reverseproxy.Handler
		Back  *broker.Entry
		RDP   []balancebin.HostPort
	}{spec.name, spec.proxy, spec.back, spec.rdp})
	if err != nil {
		return "", fmt.Errorf("%s: %w", spec.origin, err)
	}
	return string(b), nil
}

// provisionRoute makes the spec's route. Its reverse proxy is loaded in
// a context of its own, so that the route can be cleaned up on its own:
// at once, or on first use when lazy (a back entry of a group already
// proven sound: a name costs little until it is used).
func (h *Handler) provisionRoute(spec *routeSpec, fingerprint string, lazy bool) (*route, error) {
	rt := &route{
		name:        spec.name,
		origin:      spec.origin,
		prefix:      namePrefix + spec.name,
		fingerprint: fingerprint,
		back:        spec.back,
		rdpTargets:  spec.rdp,
		inline:      spec.inline,
		parent:      h.ctx,
	}
	rt.prefixHeader = []string{rt.prefix}
	rt.users.Store(1)
	if spec.proxy == nil {
		return rt, nil
	}
	for _, u := range spec.proxy.Upstreams {
		rt.upstreamDials = append(rt.upstreamDials, u.Dial)
		host := u.Dial
		if h, _, err := net.SplitHostPort(u.Dial); err == nil {
			host = h
		}
		rt.backendHosts = append(rt.backendHosts, host)
	}
	raw, err := json.Marshal(spec.proxy)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.origin, err)
	}
	rt.proxyJSON = raw
	if lazy {
		return rt, nil
	}
	if _, err := rt.handler(); err != nil {
		return nil, err
	}
	return rt, nil
}

// applyDefaults gives a name with several upstreams what a server farm
// needs wherever its configuration leaves it unset: a client stays on one
// server (remote desktop sessions must not hop), a failed server is retried
// on another at once, and passive health checks hold a failing server out.
// A single upstream keeps Caddy's own defaults: with nowhere to fail over
// to, holding it out would only turn errors into 503s.
func applyDefaults(rp *reverseproxy.Handler, key string) {
	if len(rp.Upstreams) < 2 {
		return
	}
	if rp.HealthChecks == nil {
		rp.HealthChecks = new(reverseproxy.HealthChecks)
	}
	if rp.HealthChecks.Passive == nil {
		rp.HealthChecks.Passive = new(reverseproxy.PassiveHealthChecks)
	}
	if rp.HealthChecks.Passive.FailDuration == 0 {
		rp.HealthChecks.Passive.FailDuration = caddy.Duration(defaultFailDuration)
	}
	if rp.LoadBalancing == nil {
		rp.LoadBalancing = new(reverseproxy.LoadBalancing)
	}
	lb := rp.LoadBalancing
	if lb.SelectionPolicyRaw == nil {
		lb.SelectionPolicyRaw = caddyconfig.JSONModuleObject(reverseproxy.CookieHashSelection{
			Name:        stickyCookiePrefix + key,
			FallbackRaw: caddyconfig.JSONModuleObject(reverseproxy.LeastConnSelection{}, "policy", "least_conn", nil),
		}, "policy", "cookie", nil)
	}
	if lb.Retries == 0 && lb.TryDuration == 0 {
		lb.Retries = len(rp.Upstreams) - 1
	}
}

// routeSpecs gathers every name's definition, refusing a name defined in
// two places.
func (h *Handler) routeSpecs(files [][]balancebin.Entry) (map[string]*routeSpec, error) {
	specs := make(map[string]*routeSpec)
	for _, name := range slices.Sorted(maps.Keys(h.Servers)) {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("servers: %w", err)
		}
		key := strings.ToLower(name)
		origin := fmt.Sprintf("server %s", name)
		if prev := specs[key]; prev != nil {
			return nil, fmt.Errorf("name %q is defined twice: %s and %s", name, prev.origin, origin)
		}
		rp := new(reverseproxy.Handler)
		if err := caddy.StrictUnmarshalJSON(h.Servers[name], rp); err != nil {
			return nil, fmt.Errorf("%s: %w", origin, err)
		}
		if len(rp.Upstreams) == 0 && rp.DynamicUpstreamsRaw == nil {
			return nil, fmt.Errorf("%s: no upstreams", origin)
		}
		specs[key] = &routeSpec{name: name, origin: origin, proxy: rp}
	}
	for _, name := range slices.Sorted(maps.Keys(h.Agents)) {
		origin := fmt.Sprintf("agent %s", name)
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("agents: %w", err)
		}
		key := strings.ToLower(name)
		if prev := specs[key]; prev != nil {
			return nil, fmt.Errorf("name %q is defined twice: %s and %s", name, prev.origin, origin)
		}
		spec, err := h.inlineAgentSpec(name, origin, h.Agents[name])
		if err != nil {
			return nil, err
		}
		specs[key] = spec
	}
	if err := h.rdpSpecs(specs); err != nil {
		return nil, err
	}
	for _, spec := range specs {
		spec.inline = true
	}
	for i, entries := range files {
		fileSpecs, err := h.fileSpecs(h.BalanceFiles[i], entries)
		if err != nil {
			return nil, err
		}
		for key, spec := range fileSpecs {
			if prev := specs[key]; prev != nil {
				return nil, fmt.Errorf("name %q is defined twice: %s and %s", spec.name, prev.origin, spec.origin)
			}
			specs[key] = spec
		}
	}
	return specs, nil
}

// rdpSpecs adds the inline RDP targets to the inline names, or as names of
// their own.
func (h *Handler) rdpSpecs(specs map[string]*routeSpec) error {
	for _, name := range slices.Sorted(maps.Keys(h.RDP)) {
		origin := fmt.Sprintf("rdp %s", name)
		if err := checkName(name); err != nil {
			return fmt.Errorf("rdp: %w", err)
		}
		if len(h.RDP[name]) == 0 {
			return fmt.Errorf("%s: no addresses", origin)
		}
		key := strings.ToLower(name)
		spec := specs[key]
		if spec == nil {
			spec = &routeSpec{name: name, origin: origin}
			specs[key] = spec
		} else if len(spec.rdp) > 0 {
			return fmt.Errorf("name %q has RDP targets twice: %s", name, origin)
		}
		for _, addr := range h.RDP[name] {
			hp, err := parseHostPort(addr)
			if err != nil {
				return fmt.Errorf("%s: %w", origin, err)
			}
			spec.rdp = append(spec.rdp, hp)
		}
	}
	return nil
}

// parseHostPort reads an RDP target written host:port.
func parseHostPort(addr string) (balancebin.HostPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return balancebin.HostPort{}, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || host == "" {
		return balancebin.HostPort{}, fmt.Errorf("%q: want host:port with a port from 1 to 65535", addr)
	}
	return balancebin.HostPort{Host: host, Port: uint16(n)}, nil
}

// fileSpecs groups one balance file's entries by name. Several direct
// entries for a name are its load-balanced upstreams; they must agree on
// TLS. RDPPORT lines give RDP targets; a back entry stands alone.
func (h *Handler) fileSpecs(bf BalanceFile, entries []balancebin.Entry) (map[string]*routeSpec, error) {
	specs := make(map[string]*routeSpec)
	first := make(map[string]*balancebin.Entry) // first web entry per name
	for i := range entries {
		e := &entries[i]
		key := e.Key()
		spec := specs[key]
		if spec == nil {
			spec = &routeSpec{name: e.Name, origin: e.Pos.String()}
			specs[key] = spec
		}
		switch {
		case e.RDP:
			spec.rdp = append(spec.rdp, e.Target)
			continue
		case spec.backLine != nil || (e.Back && first[key] != nil):
			prev := first[key]
			if spec.backLine != nil {
				prev = spec.backLine
			}
			return nil, fmt.Errorf("%s: name %q already has an entry at %s; a back entry must be the name's only web entry", e.Pos, e.Name, prev.Pos)
		case e.Back:
			spec.backLine = e
			spec.origin = e.Pos.String()
			back := &broker.Entry{Name: e.Name, Password: e.Password, Filter: e.Filter,
				RequireTLS: e.TLS.Encrypted(), Origin: spec.origin, Settings: h.tunnelSettings()}
			if err := h.setBack(spec, back, bf.Proxy); err != nil {
				return nil, fmt.Errorf("balance file %s: %w", bf.Path, err)
			}
			spec.lazyGroup = "back entries of " + bf.Path
			continue
		}
		if prev := first[key]; prev != nil {
			if prev.TLS.Encrypted() != e.TLS.Encrypted() || prev.TLS.Verified() != e.TLS.Verified() {
				return nil, fmt.Errorf("%s: %q uses TLS mode %q but its entry at %s uses %q; all entries of a name must agree", e.Pos, e.Name, tlsName(e.TLS), prev.Pos, tlsName(prev.TLS))
			}
		} else {
			first[key] = e
			rp := new(reverseproxy.Handler)
			if len(bf.Proxy) > 0 {
				if err := caddy.StrictUnmarshalJSON(bf.Proxy, rp); err != nil {
					return nil, fmt.Errorf("balance file %s: proxy options: %w", bf.Path, err)
				}
			}
			if err := h.setTLS(rp, e.TLS); err != nil {
				return nil, fmt.Errorf("balance file %s: %w", bf.Path, err)
			}
			spec.proxy = rp
			spec.origin = e.Pos.String()
			// Names of one file and TLS mode differ by their servers
			// and name alone, which the file's parser has checked: one
			// provisioned proves the others' options. Active health
			// checks must run from the start, so such names provision
			// at once.
			if rp.HealthChecks == nil || rp.HealthChecks.Active == nil {
				spec.lazyGroup = fmt.Sprintf("web entries of %s (%s)", bf.Path, tlsName(e.TLS))
			}
		}
		spec.proxy.Upstreams = append(spec.proxy.Upstreams, &reverseproxy.Upstream{Dial: e.Target.String()})
	}
	return specs, nil
}

// inlineAgentSpec is the route of a back entry defined in the handler's
// config rather than in a balance file.
func (h *Handler) inlineAgentSpec(name, origin string, a AgentEntry) (*routeSpec, error) {
	password := caddy.NewReplacer().ReplaceKnown(a.Password, "")
	if password == "" {
		return nil, fmt.Errorf("%s: the password is empty (after placeholders: %q)", origin, a.Password)
	}
	filter, err := balancebin.ParseFilter(origin+" allow", a.Allow)
	if err != nil {
		return nil, err
	}
	spec := &routeSpec{name: name, origin: origin}
	back := &broker.Entry{Name: name, Password: password, Filter: filter,
		RequireTLS: a.RequireTLS, Origin: origin, Settings: h.tunnelSettings()}
	if err := h.setBack(spec, back, a.Proxy); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	return spec, nil
}

// setBack makes spec a back entry: its reverse proxy (with the options of
// template, which must not name upstreams or TLS) reaches the agent
// through the broker's transport.
func (h *Handler) setBack(spec *routeSpec, back *broker.Entry, template json.RawMessage) error {
	rp := new(reverseproxy.Handler)
	if len(template) > 0 {
		if err := caddy.StrictUnmarshalJSON(template, rp); err != nil {
			return fmt.Errorf("proxy options: %w", err)
		}
	}
	transport := &broker.Transport{Name: back.Name}
	if rp.TransportRaw != nil {
		var probe struct {
			Protocol string `json:"protocol"`
		}
		if err := json.Unmarshal(rp.TransportRaw, &probe); err != nil || probe.Protocol != "http" {
			return fmt.Errorf("back entry %s: only http transport options can apply to a back entry", back.Name)
		}
		transport.HTTP = new(reverseproxy.HTTPTransport)
		if err := json.Unmarshal(rp.TransportRaw, transport.HTTP); err != nil {
			return fmt.Errorf("proxy transport: %w", err)
		}
		transport.HTTP.TLS = nil
	}
	rp.TransportRaw = caddyconfig.JSONModuleObject(transport, "protocol", "tildegate", nil)
	rp.Upstreams = reverseproxy.UpstreamPool{{Dial: strings.ToLower(back.Name) + agentUpstreamSuffix}}
	spec.proxy = rp
	spec.back = back
	return nil
}

func tlsName(k balancebin.TLSKeyword) string {
	if k == "" {
		return "plain HTTP"
	}
	return string(k)
}

// setTLS makes the proxy speak HTTPS to its upstreams for SSL entries,
// verifying their certificates only for the strict forms.
func (h *Handler) setTLS(rp *reverseproxy.Handler, mode balancebin.TLSKeyword) error {
	if !mode.Encrypted() {
		return nil
	}
	transport := new(reverseproxy.HTTPTransport)
	if rp.TransportRaw != nil {
		var probe struct {
			Protocol string `json:"protocol"`
		}
		if err := json.Unmarshal(rp.TransportRaw, &probe); err != nil {
			return fmt.Errorf("proxy transport: %w", err)
		}
		if probe.Protocol != "http" {
			return fmt.Errorf("SSL entries need the http transport, not the transport %q", probe.Protocol)
		}
		if err := json.Unmarshal(rp.TransportRaw, transport); err != nil {
			return fmt.Errorf("proxy transport: %w", err)
		}
	}
	if transport.TLS == nil {
		transport.TLS = new(reverseproxy.TLSConfig)
	}
	if mode.Verified() {
		if h.CAFile != "" {
			transport.TLS.CARaw = caddyconfig.JSONModuleObject(caddytls.FileCAPool{TrustedCACertPEMFiles: []string{h.CAFile}}, "provider", "file", nil)
		}
	} else {
		transport.TLS.InsecureSkipVerify = true
	}
	rp.TransportRaw = caddyconfig.JSONModuleObject(transport, "protocol", "http", nil)
	return nil
}

// checkName refuses a server name that could not appear in /~~name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty server name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("server name %q: %q is not allowed (letters, digits, '-', '_' and '.')", name, c)
		}
	}
	return nil
}
