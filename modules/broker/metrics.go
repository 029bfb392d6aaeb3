package broker

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tildegate/tildegate/wire"
)

// metricsBroker is the broker whose state the per-name metrics report:
// the process's, while one exists.
var metricsBroker atomic.Pointer[Broker]

// Process-wide metrics. They live as long as the process, so that a config
// reload, which gives Caddy a new registry, does not set them back.
var (
	registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tildegate_registrations_total",
		Help: "Agents' control connections, by result: accepted, or the refusal's code.",
	}, []string{"result"})
	throttledHandshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tildegate_handshakes_throttled_total",
		Help: "Control handshakes refused by the throttle, by the budget that was spent.",
	}, []string{"budget"})
	sessionOpenSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tildegate_session_open_seconds",
		Help:    "Time to open a session through an agent: a multiplexed back connection's stream, answered by the agent.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
)

// Per-name series, made from the broker's state at each scrape. A name has
// the first two from its first agent connection (accepted or refused) on,
// and the others from its first request or session on: thousands of idle
// names cost two series each.
var (
	descConnected = prometheus.NewDesc("tildegate_agent_connected",
		"1 while an agent holds the back entry, else 0.", []string{"name"}, nil)
	descBackConns = prometheus.NewDesc("tildegate_back_connections",
		"Open multiplexed back connections of the name's agent.", []string{"name"}, nil)
	descSessions = prometheus.NewDesc("tildegate_sessions",
		"Open sessions through the name's agent, by kind (http, rdp).", []string{"name", "kind"}, nil)
	descSessionsTotal = prometheus.NewDesc("tildegate_sessions_total",
		"Sessions opened through the name's agent, by kind (http, rdp).", []string{"name", "kind"}, nil)
	descRequests = prometheus.NewDesc("tildegate_requests_total",
		"Web requests to the back entry.", []string{"name"}, nil)
	descBytes = prometheus.NewDesc("tildegate_tunnel_bytes_total",
		"Bytes through the name's tunnel, by direction (to_agent, from_agent).", []string{"name", "direction"}, nil)
	descUnserved = prometheus.NewDesc("tildegate_unserved_requests_total",
		"Requests to the back entry answered without a session, by status: 502 no agent, 503 a limit, 504 no session in time.",
		[]string{"name", "status"}, nil)
)

// collector reports the per-name series.
type collector struct{}

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descBackConns, descSessions, descSessionsTotal, descRequests, descBytes, descUnserved} {
		ch <- d
	}
}

// nameSample is one name's state at a scrape.
type nameSample struct {
	name      string // lower case
	stats     *nameStats
	connected bool
	muxes     int
	open      [kinds]int64
}

// used reports whether the name has had a request or a session.
func (s *nameSample) used() bool {
	if s.stats.requests.Load() > 0 {
		return true
	}
	for k := range kinds {
		if s.stats.sessions[k].Load() > 0 {
			return true
		}
	}
	return false
}

// Collect implements prometheus.Collector. It sends each family's series
// in the order the registry sorts them into, by their labels' values in
// the order of the labels' names, which makes that sort linear: with
// 10,000 names, sorting shuffled series was a third of a scrape's CPU.
func (collector) Collect(ch chan<- prometheus.Metric) {
	b := metricsBroker.Load()
	if b == nil {
		return
	}
	all := b.sampleNames()
	used := make([]*nameSample, 0, len(all))
	for i := range all {
		if all[i].used() {
			used = append(used, &all[i])
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i := range all {
		s := &all[i]
		connected := 0.0
		if s.connected {
			connected = 1
		}
		gauge(descConnected, connected, s.name)
		gauge(descBackConns, float64(s.muxes), s.name)
	}
	// Labels sort by name: kind before name, name before status and
	// direction before name; "http" < "rdp" as wire.KindHTTP < wire.KindRDP.
	for k := range kinds {
		kind := wire.Kind(k).String()
		for _, s := range used {
			gauge(descSessions, float64(s.open[k]), s.name, kind)
			counter(descSessionsTotal, s.stats.sessions[k].Load(), s.name, kind)
		}
	}
	for _, s := range used {
		counter(descBytes, s.stats.bytesFromAgent.Load(), s.name, "from_agent")
	}
	for _, s := range used {
		counter(descBytes, s.stats.bytesToAgent.Load(), s.name, "to_agent")
	}
	for _, s := range used {
		counter(descRequests, s.stats.requests.Load(), s.name)
		counter(descUnserved, s.stats.unserved.noAgent.Load(), s.name, "502")
		counter(descUnserved, s.stats.unserved.limit.Load(), s.name, "503")
		counter(descUnserved, s.stats.unserved.timeout.Load(), s.name, "504")
	}
}

// sampleNames returns the state of every name with stats, sorted by name.
func (b *Broker) sampleNames() []nameSample {
	var all []nameSample
	b.named.Range(func(k, v any) bool {
		all = append(all, nameSample{name: k.(string), stats: v.(*nameStats)})
		return true
	})
	slices.SortFunc(all, func(x, y nameSample) int { return strings.Compare(x.name, y.name) })
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range all {
		s := &all[i]
		r := b.regs[s.name]
		if r == nil {
			continue
		}
		s.connected, s.muxes = true, len(r.muxes)
		for k := range kinds {
			s.open[k] = r.sessions[k].Load()
		}
	}
	return all
}

// RegisterMetrics adds the broker's metrics to reg, a config's registry:
// Caddy's metrics handler and its admin endpoint's /metrics serve it.
func RegisterMetrics(reg prometheus.Registerer) error {
	return RegisterCollectors(reg, registrations, throttledHandshakes, sessionOpenSeconds, collector{})
}

// RegisterCollectors registers process-wide collectors in reg, a config's
// registry; a collector registered there already is not an error, since
// every handler of a config registers its package's metrics.
func RegisterCollectors(reg prometheus.Registerer, collectors ...prometheus.Collector) error {
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
