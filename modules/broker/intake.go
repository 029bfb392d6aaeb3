package broker

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// The intake's limits, per core of the gateway: a control handshake costs
// the gateway about a millisecond of CPU (TLS, CPace, the registration),
// and a restart of a gateway with thousands of agents must not spend all of
// it on handshakes nor pile them up in memory.
const (
	// intakeRatePerCore is how many control handshakes a second the
	// gateway starts per core, and how many it may start at once after a
	// quiet second.
	intakeRatePerCore = 250
	// intakeInFlightPerCore is how many control handshakes per core may
	// be in flight at once: agents far away take round trips.
	intakeInFlightPerCore = 256
	// maxIntakeWait bounds the Retry-After of a busy refusal.
	maxIntakeWait = 2 * time.Minute
)

// intake admits control handshakes at a bounded rate and number in flight,
// before the throttle: a refusal for being busy spends none of its
// budgets. Its Retry-After spreads the agents turned away over the time
// the gateway needs to take them all at its rate, so that they come back
// in a stream rather than in a crowd.
type intake struct {
	mu          sync.Mutex
	now         func() time.Time
	random      func() float64
	rate        float64 // handshakes a second
	maxInFlight int
	tokens      bucket
	inFlight    int
	// demand counts the handshakes turned away in the current second
	// (since second), and lastDemand those of the second before it.
	second             time.Time
	demand, lastDemand int
}

// newIntake returns an intake with the default limits for this
// process's cores.
func newIntake() *intake {
	in := &intake{now: time.Now, random: rand.Float64, maxInFlight: intakeInFlightPerCore * runtime.GOMAXPROCS(0)}
	in.setRate(0)
	return in
}

// DefaultHandshakeRate is how many control handshakes a second a gateway
// starts unless its configuration says otherwise.
func DefaultHandshakeRate() int { return intakeRatePerCore * runtime.GOMAXPROCS(0) }

// setRate sets the handshakes started a second; 0 or less sets the
// default.
func (in *intake) setRate(perSecond int) {
	if perSecond <= 0 {
		perSecond = DefaultHandshakeRate()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rate = float64(perSecond)
}

// SetHandshakeRate sets how many control handshakes a second the gateway
// starts, process-wide, as the configuration gives it; 0 sets the
// default. The agents beyond it are refused busy with a Retry-After.
func (b *Broker) SetHandshakeRate(perSecond int) { b.intake.setRate(perSecond) }

// busy is a control handshake turned away: why, and when to come back.
type busy struct {
	reason     string
	retryAfter time.Duration
}

// enter admits a control handshake, which must call the returned leave
// when it ends, or says when to come back.
func (in *intake) enter() (leave func(), refused *busy) {
	now := in.now()
	in.mu.Lock()
	defer in.mu.Unlock()
	burst := int(in.rate)
	refill := time.Duration(float64(time.Second) / in.rate)
	var reason string
	if in.inFlight >= in.maxInFlight {
		reason = fmt.Sprintf("the gateway has %d agent handshakes in flight, its limit", in.inFlight)
	} else if ok, _ := in.tokens.take(now, burst, refill); !ok {
		reason = fmt.Sprintf("the gateway starts at most %d agent handshakes a second", burst)
	}
	if reason == "" {
		in.inFlight++
		var once sync.Once
		return func() {
			once.Do(func() {
				in.mu.Lock()
				in.inFlight--
				in.mu.Unlock()
			})
		}, nil
	}
	return nil, &busy{reason: reason + " and is busy; try again later", retryAfter: in.wait(now)}
}

// refund gives back the token of a handshake that the throttle then
// refused: what costs the gateway nothing must not keep other agents out.
func (in *intake) refund() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.tokens.give(int(in.rate))
}

// wait counts a handshake turned away at now and returns when it should
// come back: a random time within what the gateway needs, at its rate,
// for those turned away in the last second, at least a second.
func (in *intake) wait(now time.Time) time.Duration {
	switch elapsed := now.Sub(in.second); {
	case elapsed >= 2*time.Second:
		in.second, in.demand, in.lastDemand = now, 0, 0
	case elapsed >= time.Second:
		in.second, in.demand, in.lastDemand = now, 0, in.demand
	}
	in.demand++
	spread := float64(max(in.demand, in.lastDemand)) / in.rate
	d := time.Second + time.Duration(in.random()*spread*float64(time.Second))
	return min(d, maxIntakeWait)
}
