package gateway

import (
	"maps"
	"slices"

	"github.com/tildegate/tildegate/modules/broker"
)

// Status is what the admin API and the status page show: every name the
// gateway routes, and every back entry with its agent.
type Status struct {
	Names  []NameStatus         `json:"names"`
	Agents []broker.AgentStatus `json:"agents"`
}

// NameStatus is one name as the gateway routes it.
type NameStatus struct {
	Name string `json:"name"`
	// DefinedIn is file:line:column for a name from a balance file, else
	// "config".
	DefinedIn string `json:"defined_in"`
	// Kinds are what the name has: direct (web servers the gateway
	// reaches), back (an agent), rdp (native RDP targets).
	Kinds      []string         `json:"kinds"`
	Upstreams  []UpstreamStatus `json:"upstreams,omitempty"`
	RDPTargets []string         `json:"rdp_targets,omitempty"`
}

// UpstreamStatus is one web server of a direct name, as Caddy's reverse
// proxy sees it.
type UpstreamStatus struct {
	Address string `json:"address"`
	// Health is "healthy" or "unhealthy" (by active or passive health
	// checks), or "unknown" until the name's first request provisions
	// its proxy.
	Health string `json:"health"`
	// Requests is the number of requests in flight to it; Fails the
	// recent failures that passive health checks count.
	Requests int `json:"requests"`
	Fails    int `json:"fails"`
}

// CurrentStatus reads the status of the running configuration: the
// names of its newest handlers (a name the newest defines hides older
// definitions), and the broker's back entries.
func CurrentStatus() Status {
	handlers := runningHandlers()
	names := make(map[string]NameStatus)
	var b *broker.Broker
	for i := len(handlers) - 1; i >= 0; i-- {
		h := handlers[i]
		if b == nil {
			b = h.broker
		}
		t := h.tables.acquire()
		for key, rt := range t.routes {
			if _, seen := names[key]; !seen {
				names[key] = rt.status()
			}
		}
		t.release()
	}
	st := Status{Names: make([]NameStatus, 0, len(names)), Agents: []broker.AgentStatus{}}
	for _, key := range slices.Sorted(maps.Keys(names)) {
		st.Names = append(st.Names, names[key])
	}
	if b != nil {
		st.Agents = b.Agents()
	}
	return st
}

// CurrentNameStatus reads the status of name (in any case, as requests
// give it) as CurrentStatus lists it, and whether the running
// configuration routes it, at the cost of one name rather than all.
func CurrentNameStatus(name string) (NameStatus, bool) {
	var st NameStatus
	found := withNewestRoute(name, func(_ *Handler, rt *route) { st = rt.status() })
	return st, found
}

// withNewestRoute calls use with the route of name (in any case, as
// requests give it) in the newest running handler that defines it, while
// that handler's table is held, and reports whether one does.
func withNewestRoute(name string, use func(*Handler, *route)) bool {
	key := lookupKey(name)
	handlers := runningHandlers()
	for i := len(handlers) - 1; i >= 0; i-- {
		h := handlers[i]
		t := h.tables.acquire()
		rt := t.routes[key]
		if rt != nil {
			use(h, rt)
		}
		t.release()
		if rt != nil {
			return true
		}
	}
	return false
}

// runningHandlers returns the running handlers, the oldest first.
func runningHandlers() []*Handler {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	return slices.Clone(liveHandlers.list)
}

// status describes the route.
func (rt *route) status() NameStatus {
	ns := NameStatus{Name: rt.name, DefinedIn: rt.origin, Kinds: []string{}}
	if rt.inline {
		ns.DefinedIn = "config"
	}
	switch {
	case rt.back != nil:
		ns.Kinds = append(ns.Kinds, "back")
	case rt.proxyJSON != nil:
		ns.Kinds = append(ns.Kinds, "direct")
		ns.Upstreams = rt.upstreamStatus()
	}
	if len(rt.rdpTargets) > 0 {
		ns.Kinds = append(ns.Kinds, "rdp")
		for _, hp := range rt.rdpTargets {
			ns.RDPTargets = append(ns.RDPTargets, hp.String())
		}
	}
	return ns
}

// upstreamStatus reads the health of the route's web servers from its
// provisioned proxy.
func (rt *route) upstreamStatus() []UpstreamStatus {
	p := rt.ready.Load()
	if p == nil {
		out := make([]UpstreamStatus, len(rt.upstreamDials))
		for i, dial := range rt.upstreamDials {
			out[i] = UpstreamStatus{Address: dial, Health: "unknown"}
		}
		return out
	}
	out := make([]UpstreamStatus, 0, len(p.Upstreams))
	for _, u := range p.Upstreams {
		us := UpstreamStatus{Address: u.Dial, Health: "unhealthy"}
		if u.Healthy() {
			us.Health = "healthy"
		}
		if u.Host != nil {
			us.Requests, us.Fails = u.NumRequests(), u.Fails()
		}
		out = append(out, us)
	}
	return out
}
