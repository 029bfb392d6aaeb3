// Package broker is the gateway's side of tildegate's back connections: it
// accepts the agents' control and back connections through Caddy, checks
// them, holds registrations across config reloads, and hands back
// connections to the reverse proxy's transport
// (http.reverse_proxy.transport.tildegate). docs/protocol.md describes the
// protocol.
package broker

import (
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tildegate/tildegate/caddyfile/balancebin"
	"github.com/tildegate/tildegate/wire"
	"go.uber.org/zap"
)

// Defaults of Settings.
const (
	DefaultAlive     = 20 * time.Second
	DefaultDead      = 60 * time.Second
	DefaultBackWait  = 10 * time.Second
	DefaultTicketTTL = 10 * time.Second
	// DefaultIdleTimeout is how long a name with no session keeps its
	// multiplexed back connections.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxSessions is sized for a big farm server: a few hundred
	// users, each with a websocket and a few requests in flight.
	DefaultMaxSessions = 4096
	// maxRDPSessions limits the native RDP sessions per name, apart from
	// the web's: RDP connections arrive unauthenticated, and must not take
	// the web's budget.
	maxRDPSessions = 256
	// muxConns is how many multiplexed back connections a registration
	// keeps: a second one carries new sessions while a dropped one is
	// replaced.
	muxConns = 2
	// resumeWindow is how long a session that ended can still be resumed
	// past the throttle's budgets.
	resumeWindow         = 10 * time.Minute
	handshakeTimeout     = 10 * time.Second
	brokerPoolKey        = "tildegate.broker"
	resolveFilterTimeout = 3 * time.Second
)

// Settings tune the tunnel; zero values take the defaults.
type Settings struct {
	// Alive is how long a side may stay silent before it sends an ALIVE.
	Alive time.Duration
	// Dead is how long a silent control connection lives.
	Dead time.Duration
	// BackWait is how long opening a session through the agent may take.
	BackWait time.Duration
	// TicketTTL is how long a ticket may wait to be presented.
	TicketTTL time.Duration
	// MaxSessions limits the web sessions (connections of the reverse
	// proxy to the agent) open at once per name.
	MaxSessions int
	// IdleTimeout is how long a name with no session open keeps its
	// multiplexed back connections after its last session was asked for.
	IdleTimeout time.Duration
}

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&s.Alive, DefaultAlive)
	def(&s.Dead, DefaultDead)
	def(&s.BackWait, DefaultBackWait)
	def(&s.TicketTTL, DefaultTicketTTL)
	def(&s.IdleTimeout, DefaultIdleTimeout)
	if s.MaxSessions <= 0 {
		s.MaxSessions = DefaultMaxSessions
	}
	return s
}

// Entry is a back entry as the broker checks it.
type Entry struct {
	Name string
	// Password is the entry's password: the PAKE of the handshake proves
	// it, and it is never sent, logged or stretched.
	Password   string
	Filter     balancebin.Filter
	RequireTLS bool
	// Origin says where the entry was defined, for logs.
	Origin string
	// Settings of the handler that defines the entry.
	Settings Settings
}

// credentials are what an agent's registration was checked against: its
// entry's password, TLS requirement and address filter as they were then.
type credentials struct {
	password   string
	filter     balancebin.Filter
	requireTLS bool
}

func credentialsOf(e *Entry) credentials {
	return credentials{password: e.Password, filter: e.Filter, requireTLS: e.RequireTLS}
}

// samePassword compares the passwords in constant time.
func (c *credentials) samePassword(e *Entry) bool {
	return subtle.ConstantTimeCompare([]byte(c.password), []byte(e.Password)) == 1
}

// sameAs reports whether e has the same password, TLS requirement and
// address filter.
func (c *credentials) sameAs(e *Entry) bool {
	return c.samePassword(e) && c.requireTLS == e.RequireTLS && c.filter == e.Filter
}

// claim is an entry and how many routing tables currently define it.
type claim struct {
	entry Entry
	refs  int
}

// Broker holds the registrations of all agents. One Broker serves every
// tildegate handler of the process and outlives config reloads.
type Broker struct {
	logger *zap.Logger

	mu      sync.Mutex
	regs    map[string]*registration // by lower-case name
	claims  map[string]*claim        // by lower-case name
	ended   map[string]endedSession  // by lower-case name: the last session that dropped
	tickets map[[wire.TicketSize]byte]*ticket
	used    map[[wire.TicketSize]byte]time.Time // presented tickets, for replay detection
	swept   time.Time                           // when the tickets were last swept

	// holds are the names whose agents the administrator keeps out, until
	// when; guarded by mu.
	holds map[string]time.Time

	intake   *intake
	throttle *throttle
	logs     *logLimiter

	// named holds a *nameStats by lower-case name, from the name's first
	// agent connection (accepted or refused) or request on; read without a
	// lock by every request to a back entry.
	named sync.Map

	// alive keeps the registrations alive and watches them for silence.
	alive *aliveSweep
	// stopped is closed when the broker stops.
	stopped  chan struct{}
	stopOnce sync.Once
}

// endedSession is a session that dropped and that its agent may resume.
type endedSession struct {
	id    []byte
	key   wire.SessionKey
	until time.Time
}

var brokers = caddy.NewUsagePool()

// Acquire returns the process's broker, making it on first use. Every
// Acquire must be matched by exactly one Release.
func Acquire(logger *zap.Logger) *Broker {
	v, _, _ := brokers.LoadOrNew(brokerPoolKey, func() (caddy.Destructor, error) {
		return newBroker(logger), nil
	})
	return v.(*Broker)
}

// Release gives up one Acquire; the last one closes every registration.
func Release() {
	_, _ = brokers.Delete(brokerPoolKey)
}

func newBroker(logger *zap.Logger) *Broker {
	b := &Broker{
		logger:   logger.Named("broker"),
		regs:     make(map[string]*registration),
		claims:   make(map[string]*claim),
		ended:    make(map[string]endedSession),
		tickets:  make(map[[wire.TicketSize]byte]*ticket),
		used:     make(map[[wire.TicketSize]byte]time.Time),
		holds:    make(map[string]time.Time),
		intake:   newIntake(),
		throttle: newThrottle(),
		logs:     newLogLimiter(),
		stopped:  make(chan struct{}),
		alive:    newAliveSweep(),
	}
	metricsBroker.Store(b)
	go b.alive.run(b.stopped)
	return b
}

// Destruct closes every registration: the gateway is stopping. It closes
// them all at once, so that agents that read nothing hold the stop up for
// frameWriteTimeout in all, not each.
func (b *Broker) Destruct() error {
	metricsBroker.CompareAndSwap(b, nil)
	b.stopOnce.Do(func() { close(b.stopped) })
	b.mu.Lock()
	regs := make([]*registration, 0, len(b.regs))
	for _, r := range b.regs {
		regs = append(regs, r)
	}
	b.mu.Unlock()
	var closing sync.WaitGroup
	for _, r := range regs {
		closing.Go(func() { r.close(wire.CodeShuttingDown, "the gateway is stopping") })
	}
	closing.Wait()
	return nil
}

// Claim records that a routing table defines these entries. A registration
// whose entry changed so that its agent no longer qualifies is closed with
// the reason.
func (b *Broker) Claim(entries []Entry) {
	type check struct {
		reg   *registration
		entry Entry
	}
	var checks []check
	b.mu.Lock()
	for _, e := range entries {
		key := strings.ToLower(e.Name)
		c := b.claims[key]
		if c == nil {
			c = new(claim)
			b.claims[key] = c
		}
		c.refs++
		c.entry = e
		if r := b.regs[key]; r != nil {
			checks = append(checks, check{r, e})
		}
	}
	b.mu.Unlock()
	for _, c := range checks {
		if code, why, bad := c.reg.disqualifiedBy(&c.entry); bad {
			c.reg.close(code, why)
		}
	}
}

// Unclaim undoes a Claim. An entry that no table defines any more closes
// its registration.
func (b *Broker) Unclaim(entries []Entry) {
	var removed []*registration
	b.mu.Lock()
	for _, e := range entries {
		key := strings.ToLower(e.Name)
		c := b.claims[key]
		if c == nil {
			continue
		}
		if c.refs--; c.refs > 0 {
			continue
		}
		delete(b.claims, key)
		delete(b.ended, key)
		if r := b.regs[key]; r != nil {
			removed = append(removed, r)
		}
	}
	b.mu.Unlock()
	code, reason := wire.CodeEntryRemoved, "the entry was removed from the gateway's configuration"
	if caddy.Exiting() {
		// The last config is unloading because the process stops: the
		// agents should come back soon, not wait as for a removed entry.
		code, reason = wire.CodeShuttingDown, "the gateway is stopping"
	}
	for _, r := range removed {
		r.close(code, reason)
	}
}

// Connected reports whether an agent holds name.
func (b *Broker) Connected(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.regs[strings.ToLower(name)] != nil
}

func (b *Broker) entry(key string) (Entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.claims[key]
	if c == nil {
		return Entry{}, false
	}
	return c.entry, true
}
