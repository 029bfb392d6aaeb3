package agent

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tildegate/tildegate/agent/proxy"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
)

// State is where the registration of an entry stands.
type State string

// The states of an entry.
const (
	// StateConnecting: the agent is connecting to the gateway and
	// registering.
	StateConnecting State = "connecting"
	// StateRegistered: the gateway accepted the registration.
	StateRegistered State = "registered"
	// StateWaiting: the last attempt failed, or the registration was
	// lost; the agent tries again at RetryAt.
	StateWaiting State = "waiting"
	// StateRefused: the gateway refused or closed the registration (see
	// Refusal); the agent tries again at RetryAt.
	StateRefused State = "refused"
	// StateStopped: the agent does not serve the entry: Run has not
	// started or has ended, or the entry cannot be served (see
	// LastError).
	StateStopped State = "stopped"
	// StateDuplicate, of a gateway address only: the address leads to a
	// gateway instance on which another address of the entry's gateway
	// holds the registration; the agent tries the address again at the
	// next lookup of the gateway's host.
	StateDuplicate State = "duplicate"
)

// Status is a snapshot of the agent.
type Status struct {
	// Entries are those of the last Apply, in their order, including
	// those the agent cannot serve.
	Entries []EntryStatus `json:"entries"`
	// OpenFiles is the open-file budget of the agent.
	OpenFiles FileBudget `json:"open_files"`
}

// FileBudget is the open-file budget: the agent refuses sessions
// (too-many) when it holds nearly Limit connections.
type FileBudget struct {
	Limit int64 `json:"limit"`
	// InUse counts the connections the agent holds: control, multiplexed
	// back connections and sessions' local connections.
	InUse int64 `json:"in_use"`
}

// EntryStatus is a snapshot of one entry. It holds no password, neither
// the entry's nor its proxies'.
type EntryStatus struct {
	Name string `json:"name"`
	// Position is where the entry is written, file:line:column.
	Position string `json:"position"`
	// Gateway is the gateway's host:port.
	Gateway string `json:"gateway"`
	TLS     bool   `json:"tls"`
	// Proxies is the entry's proxy chain, in the order the connection
	// goes through it.
	Proxies []ProxyHop `json:"proxies,omitempty"`

	// State is the best state of the entry's gateway addresses (see
	// Gateways): registered when the entry is registered with at least
	// one of them.
	State State `json:"state"`
	// Since is when the entry entered State.
	Since time.Time `json:"since,omitzero"`
	// RetryAt is when the next attempt starts, while waiting or refused.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Refusal is the gateway's refusal, while refused.
	Refusal *Refusal `json:"refusal,omitempty"`
	// LastError is why the last attempt failed or the last registration
	// ended, or why the entry cannot be served; LastErrorAt is when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RegisteredSince is when the last registration was accepted, at any
	// of the gateway's addresses.
	RegisteredSince time.Time     `json:"registered_since,omitzero"`
	Registrations   Registrations `json:"registrations"`
	// Resumed counts the registrations that took the previous session
	// back after a drop.
	Resumed int64 `json:"resumed"`

	// BackConnections counts the multiplexed back connections open.
	BackConnections int64           `json:"back_connections"`
	Sessions        Sessions        `json:"sessions"`
	SessionsRefused SessionRefusals `json:"sessions_refused"`
	// BytesToLocal and BytesFromLocal count the bytes of the sessions,
	// to and from the local services, as they flow.
	BytesToLocal   int64 `json:"bytes_to_local"`
	BytesFromLocal int64 `json:"bytes_from_local"`

	// Gateways lists the addresses of the entry's gateway, each with a
	// registration of its own, in the order of their addresses.
	Gateways []GatewayStatus `json:"gateways,omitempty"`
	// ByName is set while the agent cannot resolve the gateway's host and
	// connects by name through the entry's proxies: one connection, to
	// whichever gateway the proxy reaches.
	ByName bool `json:"by_name,omitempty"`
	// ResolveError is why the last lookup of the gateway's host failed,
	// and ResolveErrorAt when; empty when it succeeded. The agent keeps
	// its connections meanwhile.
	ResolveError   string    `json:"resolve_error,omitempty"`
	ResolveErrorAt time.Time `json:"resolve_error_at,omitzero"`
}

// GatewayStatus is the registration of an entry at one address of its
// gateway.
type GatewayStatus struct {
	// Address is the address the agent connects to, ip:port, or the
	// gateway's host:port when it connects by name.
	Address string `json:"address"`
	State   State  `json:"state"`
	// Since is when the address entered State.
	Since time.Time `json:"since,omitzero"`
	// RetryAt is when the next attempt starts, while waiting or refused.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Refusal is the gateway's refusal, while refused.
	Refusal *Refusal `json:"refusal,omitempty"`
	// Instance names the gateway process of the last registration, or,
	// in state duplicate, the one that another address holds.
	Instance string `json:"instance,omitempty"`
	// RegisteredSince is when the last registration at this address was
	// accepted.
	RegisteredSince time.Time `json:"registered_since,omitzero"`
	// LastError is why the last attempt failed or the last registration
	// ended; LastErrorAt is when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ProxyHop is one proxy of an entry's chain.
type ProxyHop struct {
	// Address is the proxy's host:port.
	Address string `json:"address"`
	// Login is as proxy.Login says: "no login", "Basic as USER", "NTLM as
	// DOMAIN\USER"; never the password.
	Login string `json:"login"`
}

// Refusal is a refusal or close from the gateway.
type Refusal struct {
	// Code is the refusal's code, such as "throttled".
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// Registrations counts the attempts to register, by result.
type Registrations struct {
	Registered int64 `json:"registered"`
	// Refused counts the attempts the gateway refused.
	Refused int64 `json:"refused"`
	// Failed counts the other failures: the gateway or a proxy could not
	// be reached, a proxy refused, the handshake failed.
	Failed int64 `json:"failed"`
}

// Sessions counts the sessions, by kind.
type Sessions struct {
	HTTP SessionCount `json:"http"`
	RDP  SessionCount `json:"rdp"`
}

// SessionCount counts the sessions of one kind: those open, and all those
// accepted since the entry started.
type SessionCount struct {
	Open  int64 `json:"open"`
	Total int64 `json:"total"`
}

// SessionRefusals counts the sessions the agent refused, by code.
type SessionRefusals struct {
	// TooMany: the agent was near its open-file budget.
	TooMany int64 `json:"too-many"`
	// LocalUnavailable: the local service refused the connection.
	LocalUnavailable int64 `json:"local-unavailable"`
	// BadRequest: a kind of session that has no local service.
	BadRequest int64 `json:"bad-request"`
}

// Status returns a snapshot of every entry of the last Apply and of the
// open-file budget. It may be called at any time, from any goroutine.
func (a *Agent) Status() Status {
	st, _ := a.snapshot()
	return st
}

// snapshot returns Status and, for each of its entries, whether the agent
// serves it (whether CheckEntries let it through).
func (a *Agent) snapshot() (Status, []bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	served := make([]bool, len(a.listed))
	st := Status{
		Entries:   make([]EntryStatus, 0, len(a.listed)),
		OpenFiles: FileBudget{Limit: a.files.limit, InUse: a.files.open.Load()},
	}
	for i, e := range a.listed {
		s := describeEntry(e)
		r := a.runners[e.Key()]
		served[i] = a.checks[i] == nil
		switch {
		case !served[i]:
			s.State, s.LastError = StateStopped, a.checks[i].Error()
		case r != nil:
			r.fill(&s)
		default:
			s.State = StateStopped
		}
		st.Entries = append(st.Entries, s)
	}
	return st, served
}

// describeEntry returns the status of e that its settings give.
func describeEntry(e balancebin.BackEntry) EntryStatus {
	s := EntryStatus{Name: e.Name, Position: e.Pos.String(), Gateway: e.Gateway.String(), TLS: e.UseTLS()}
	for _, px := range e.Proxies {
		s.Proxies = append(s.Proxies, ProxyHop{Address: px.Address.String(), Login: proxy.Login(px)})
	}
	return s
}

// Number of session kinds counted: wire.KindHTTP and wire.KindRDP index
// the counters.
const sessionKinds = 2

// counters are what the runners of an entry count together, without a
// lock: they outlive the runner of any one address.
type counters struct {
	// nRegistered, nRefused and nFailed count the attempts to register,
	// by result.
	nRegistered, nRefused, nFailed atomic.Int64
	resumed                        atomic.Int64

	backs              atomic.Int64
	open, total        [sessionKinds]atomic.Int64
	tooMany            atomic.Int64
	localDown          atomic.Int64
	badRequest         atomic.Int64
	toLocal, fromLocal atomic.Int64 // bytes to and from the local service
}

// tracker is what a runner reports of itself: its state, under mu, and
// the entry's counters, which its sessions update as they go.
type tracker struct {
	*counters

	mu           sync.Mutex
	state        State
	since        time.Time
	retryAt      time.Time
	refusal      *Refusal
	lastErr      string
	lastErrAt    time.Time
	registeredAt time.Time
	instance     string
}

// newTracker returns the tracker of a runner about to connect, counting
// into c.
func newTracker(c *counters) *tracker {
	return &tracker{counters: c, state: StateConnecting, since: time.Now()}
}

// set enters state. t.mu is held.
func (t *tracker) set(state State, now time.Time) {
	t.state, t.since = state, now
	t.retryAt, t.refusal = time.Time{}, nil
}

// connecting records an attempt to register starting.
func (t *tracker) connecting() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set(StateConnecting, time.Now())
}

// registered records a registration accepted on the gateway instance
// (empty when the gateway did not say); resumed says whether it took the
// previous session back.
func (t *tracker) registered(resumed bool, instance string) {
	t.nRegistered.Add(1)
	if resumed {
		t.resumed.Add(1)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.set(StateRegistered, now)
	t.registeredAt, t.instance = now, instance
}

// duplicate records an address left alone because another one holds the
// registration on the same gateway instance.
func (t *tracker) duplicate(d *duplicateError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.set(StateDuplicate, now)
	t.instance = d.instance
	t.lastErr, t.lastErrAt = d.Error(), now
}

// failed records an attempt to register that failed with err, the next
// one being in delay.
func (t *tracker) failed(err error, delay time.Duration) {
	var ref *wire.Refusal
	if errors.As(err, &ref) {
		t.nRefused.Add(1)
	} else {
		t.nFailed.Add(1)
	}
	t.wait(err.Error(), ref, delay)
}

// wait records a registration that failed or ended for why, ref being the
// gateway's refusal or close if there is one, the next attempt being in
// delay.
func (t *tracker) wait(why string, ref *wire.Refusal, delay time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if ref != nil {
		t.set(StateRefused, now)
		t.refusal = &Refusal{Code: ref.Code.String(), Reason: ref.Reason}
	} else {
		t.set(StateWaiting, now)
	}
	t.retryAt = now.Add(delay)
	t.lastErr, t.lastErrAt = why, now
}

// stopped records the runner's end.
func (t *tracker) stopped() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set(StateStopped, time.Now())
}

// refused counts a session refused with code.
func (c *counters) refused(code wire.Code) {
	switch code {
	case wire.CodeTooMany:
		c.tooMany.Add(1)
	case wire.CodeLocalUnavailable:
		c.localDown.Add(1)
	case wire.CodeBadRequest:
		c.badRequest.Add(1)
	}
}

// session counts a session of kind (wire.KindHTTP or wire.KindRDP) that
// opens, and returns its local connection, which counts its bytes, and
// the function that counts its end.
func (c *counters) session(kind wire.Kind, local net.Conn) (net.Conn, func()) {
	c.open[kind].Add(1)
	c.total[kind].Add(1)
	return &countingConn{Conn: local, written: &c.toLocal, read: &c.fromLocal}, func() { c.open[kind].Add(-1) }
}

// status returns the state of the runner at address.
func (t *tracker) status(address string) GatewayStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := GatewayStatus{Address: address, State: t.state, Since: t.since, RetryAt: t.retryAt, Instance: t.instance,
		RegisteredSince: t.registeredAt, LastError: t.lastErr, LastErrorAt: t.lastErrAt}
	if t.refusal != nil {
		ref := *t.refusal
		g.Refusal = &ref
	}
	return g
}

// fill copies the counters into s.
func (c *counters) fill(s *EntryStatus) {
	s.Registrations = Registrations{Registered: c.nRegistered.Load(), Refused: c.nRefused.Load(), Failed: c.nFailed.Load()}
	s.Resumed = c.resumed.Load()
	s.BackConnections = c.backs.Load()
	s.Sessions.HTTP = SessionCount{Open: c.open[wire.KindHTTP].Load(), Total: c.total[wire.KindHTTP].Load()}
	s.Sessions.RDP = SessionCount{Open: c.open[wire.KindRDP].Load(), Total: c.total[wire.KindRDP].Load()}
	s.SessionsRefused = SessionRefusals{TooMany: c.tooMany.Load(), LocalUnavailable: c.localDown.Load(), BadRequest: c.badRequest.Load()}
	s.BytesToLocal, s.BytesFromLocal = c.toLocal.Load(), c.fromLocal.Load()
}

// countingConn counts the bytes written to and read from a connection.
type countingConn struct {
	net.Conn
	written, read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}
