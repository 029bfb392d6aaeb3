package broker

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/wire"
)

// nameStats counts what went through one name since the process started.
// It is made with the name's first agent connection (accepted or refused)
// or request, so that names that never see either cost nothing, and
// outlives registrations and config reloads.
type nameStats struct {
	requests       atomic.Int64 // requests to the name (web)
	sessions       [kinds]atomic.Int64
	bytesToAgent   atomic.Int64
	bytesFromAgent atomic.Int64
	// unserved counts the requests answered with each status for want of
	// a session: 502 (no agent), 503 (a limit), 504 (no session in time).
	unserved struct{ noAgent, limit, timeout atomic.Int64 }

	mu          sync.Mutex
	lastRefusal *Refusal // of a control connection; guarded by mu
}

// Refusal is a refused agent connection, as the status reports it.
type Refusal struct {
	At     time.Time `json:"at"`
	Code   string    `json:"code"`
	Reason string    `json:"reason"`
	Source string    `json:"source"`
}

// stats returns the counters of the name with lower-case key, making them
// on first use.
func (b *Broker) stats(key string) *nameStats {
	if s, ok := b.named.Load(key); ok {
		return s.(*nameStats)
	}
	s, _ := b.named.LoadOrStore(key, new(nameStats))
	return s.(*nameStats)
}

// refusedControl records a refused control connection for a configured
// name.
func (b *Broker) refusedControl(key string, code wire.Code, reason string, ip netip.Addr) {
	s := b.stats(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRefusal = &Refusal{At: time.Now(), Code: code.String(), Reason: reason, Source: ip.String()}
}

// CountRequest counts a request to the back entry called name.
func (b *Broker) CountRequest(name string) {
	b.stats(strings.ToLower(name)).requests.Add(1)
}

// Unserved is why a request to a back entry got no session.
type Unserved int

// Reasons of Unserved.
const (
	UnservedNoAgent Unserved = iota // 502: no agent holds the name
	UnservedLimit                   // 503: a limit was reached
	UnservedTimeout                 // 504: no session within back_wait
)

// CountUnserved counts a request to the back entry called name that got no
// session, and why.
func (b *Broker) CountUnserved(name string, why Unserved) {
	s := b.stats(strings.ToLower(name))
	switch why {
	case UnservedNoAgent:
		s.unserved.noAgent.Add(1)
	case UnservedLimit:
		s.unserved.limit.Add(1)
	case UnservedTimeout:
		s.unserved.timeout.Add(1)
	}
}

// AgentStatus is what the gateway knows of one back entry and its agent.
type AgentStatus struct {
	Name      string `json:"name"`
	Origin    string `json:"origin"`
	Connected bool   `json:"connected"`
	// Address is the agent's address as the gateway sees it.
	Address string `json:"address,omitempty"`
	// Agent is the software and version the agent named in its hello.
	Agent     string     `json:"agent,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	LastHeard *time.Time `json:"last_heard,omitempty"`
	TLS       bool       `json:"tls"`
	// Bound reports whether the handshake is bound to the agent's TLS
	// session (binding=tls).
	Bound bool `json:"channel_binding"`
	// BackConnections counts the open multiplexed back connections.
	BackConnections int `json:"back_connections"`
	// Sessions counts the open sessions by kind, and SessionsTotal those
	// opened since the gateway started.
	Sessions       map[string]int64 `json:"sessions"`
	SessionsTotal  map[string]int64 `json:"sessions_total"`
	Requests       int64            `json:"requests"`
	BytesToAgent   int64            `json:"bytes_to_agent"`
	BytesFromAgent int64            `json:"bytes_from_agent"`
	LastRefusal    *Refusal         `json:"last_refusal,omitempty"`
	// HeldUntil is set while the administrator holds the name's agent out.
	HeldUntil *time.Time `json:"held_until,omitempty"`
}

// agentEntry is a configured back entry as its status is read: its
// claim, its registration with its count of mux connections, and its
// hold, taken under the broker's mutex.
type agentEntry struct {
	key   string
	claim Entry
	reg   *registration
	muxes int
	held  time.Time
}

// agentEntryLocked reads the back entry key, whose claim is c; b.mu is
// held.
func (b *Broker) agentEntryLocked(key string, c *claim) agentEntry {
	e := agentEntry{key: key, claim: c.entry, reg: b.regs[key], held: b.holds[key]}
	if e.reg != nil {
		e.muxes = len(e.reg.muxes)
	}
	return e
}

// Agents returns the status of every configured back entry, by name.
func (b *Broker) Agents() []AgentStatus {
	now := time.Now()
	b.mu.Lock()
	entries := make([]agentEntry, 0, len(b.claims))
	for key, c := range b.claims {
		entries = append(entries, b.agentEntryLocked(key, c))
	}
	b.mu.Unlock()
	slices.SortFunc(entries, func(x, y agentEntry) int { return strings.Compare(x.key, y.key) })

	out := make([]AgentStatus, 0, len(entries))
	for _, e := range entries {
		out = append(out, b.agentStatus(e, now))
	}
	return out
}

// Agent returns the status of the configured back entry called name (in
// any case), and whether there is one: what Agents lists for it, at the
// cost of one entry rather than all.
func (b *Broker) Agent(name string) (AgentStatus, bool) {
	key := strings.ToLower(name)
	b.mu.Lock()
	c := b.claims[key]
	var e agentEntry
	if c != nil {
		e = b.agentEntryLocked(key, c)
	}
	b.mu.Unlock()
	if c == nil {
		return AgentStatus{}, false
	}
	return b.agentStatus(e, time.Now()), true
}

// agentStatus reads the status of one back entry.
func (b *Broker) agentStatus(e agentEntry, now time.Time) AgentStatus {
	st := AgentStatus{Name: e.claim.Name, Origin: e.claim.Origin,
		Sessions: map[string]int64{}, SessionsTotal: map[string]int64{}}
	if e.held.After(now) {
		st.HeldUntil = &e.held
	}
	if r := e.reg; r != nil {
		since, heard := r.since, clockStart.Add(time.Duration(r.lastHeard.Load()))
		st.Connected, st.Address, st.Agent, st.Since, st.LastHeard = true, r.addr, r.agent, &since, &heard
		st.TLS, st.Bound, st.BackConnections = r.tls, r.bound, e.muxes
		for k := range kinds {
			st.Sessions[wire.Kind(k).String()] = r.sessions[k].Load()
		}
	}
	if v, ok := b.named.Load(e.key); ok {
		s := v.(*nameStats)
		for k := range kinds {
			st.SessionsTotal[wire.Kind(k).String()] = s.sessions[k].Load()
		}
		st.Requests = s.requests.Load()
		st.BytesToAgent, st.BytesFromAgent = s.bytesToAgent.Load(), s.bytesFromAgent.Load()
		s.mu.Lock()
		st.LastRefusal = s.lastRefusal
		s.mu.Unlock()
	}
	return st
}
