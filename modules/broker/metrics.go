package broker

import (
	"errors"
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

// Per-name series, made from the broker's state at each scrape; a name
// has them from its first traffic on.
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

// Collect implements prometheus.Collector.
func (collector) Collect(ch chan<- prometheus.Metric) {
	b := metricsBroker.Load()
	if b == nil {
		return
	}
	b.named.Range(func(k, v any) bool {
		b.collectName(ch, k.(string), v.(*nameStats))
		return true
	})
}

// collectName reports the series of one name, by its lower-case key.
func (b *Broker) collectName(ch chan<- prometheus.Metric, name string, s *nameStats) {
	b.mu.Lock()
	r := b.regs[name]
	muxes := 0
	if r != nil {
		muxes = len(r.muxes)
	}
	b.mu.Unlock()
	connected := 0.0
	if r != nil {
		connected = 1
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnected, connected, name)
	gauge(descBackConns, float64(muxes), name)
	for k := range kinds {
		kind := wire.Kind(k).String()
		open := int64(0)
		if r != nil {
			open = r.sessions[k].Load()
		}
		gauge(descSessions, float64(open), name, kind)
		counter(descSessionsTotal, s.sessions[k].Load(), name, kind)
	}
	counter(descRequests, s.requests.Load(), name)
	counter(descBytes, s.bytesToAgent.Load(), name, "to_agent")
	counter(descBytes, s.bytesFromAgent.Load(), name, "from_agent")
	counter(descUnserved, s.unserved.noAgent.Load(), name, "502")
	counter(descUnserved, s.unserved.limit.Load(), name, "503")
	counter(descUnserved, s.unserved.timeout.Load(), name, "504")
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
