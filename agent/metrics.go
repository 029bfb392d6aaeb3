package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// states lists every state, for the count of entries by state.
var states = []State{StateConnecting, StateRegistered, StateWaiting, StateRefused, StateStopped}

// The agent's metrics; each scrape reads a Status.
var (
	entriesDesc = prometheus.NewDesc("tildegate_agent_entries",
		"Entries of backbalance.bin, by the state of their registration.", []string{"state"}, nil)
	registrationsDesc = prometheus.NewDesc("tildegate_agent_registrations_total",
		"Attempts to register, by entry name and result: registered, refused (by the gateway) or failed.",
		[]string{"name", "result"}, nil)
	backsDesc = prometheus.NewDesc("tildegate_agent_back_connections_open",
		"Multiplexed back connections open, by entry name.", []string{"name"}, nil)
	sessionsOpenDesc = prometheus.NewDesc("tildegate_agent_sessions_open",
		"Sessions open, by entry name and kind (http, rdp).", []string{"name", "kind"}, nil)
	sessionsDesc = prometheus.NewDesc("tildegate_agent_sessions_total",
		"Sessions accepted, by entry name and kind (http, rdp).", []string{"name", "kind"}, nil)
	refusedDesc = prometheus.NewDesc("tildegate_agent_sessions_refused_total",
		"Sessions the agent refused, by entry name and reason (too-many, local-unavailable, bad-request).",
		[]string{"name", "reason"}, nil)
	bytesDesc = prometheus.NewDesc("tildegate_agent_bytes_total",
		"Bytes of the sessions, by entry name and direction (to_local, from_local: to and from the local service).",
		[]string{"name", "direction"}, nil)
	gatewaysDesc = prometheus.NewDesc("tildegate_agent_gateways_registered",
		"Addresses of the entry's gateway at which the entry is registered, by entry name.", []string{"name"}, nil)
	filesDesc = prometheus.NewDesc("tildegate_agent_open_files",
		"Connections the agent holds against its open-file budget.", nil, nil)
	filesLimitDesc = prometheus.NewDesc("tildegate_agent_open_files_limit",
		"The agent's open-file budget: sessions are refused (too-many) near it.", nil, nil)
)

// Collector returns a Prometheus collector of the agent's metrics, named
// tildegate_agent_*. Counters count from the start of each entry's runner:
// they start again from zero when an entry changes in backbalance.bin.
func (a *Agent) Collector() prometheus.Collector { return collector{a} }

// collector collects an agent's metrics.
type collector struct{ a *Agent }

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{entriesDesc, registrationsDesc, backsDesc, sessionsOpenDesc,
		sessionsDesc, refusedDesc, bytesDesc, gatewaysDesc, filesDesc, filesLimitDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	st, served := c.a.snapshot()
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	byState := make(map[State]int64, len(states))
	for _, e := range st.Entries {
		byState[e.State]++
	}
	for _, s := range states {
		gauge(entriesDesc, byState[s], string(s))
	}
	gauge(filesDesc, st.OpenFiles.InUse)
	gauge(filesLimitDesc, st.OpenFiles.Limit)
	for i, e := range st.Entries {
		// An entry that cannot be served may repeat a name: it is counted
		// by state only.
		if !served[i] {
			continue
		}
		counter(registrationsDesc, e.Registrations.Registered, e.Name, "registered")
		counter(registrationsDesc, e.Registrations.Refused, e.Name, "refused")
		counter(registrationsDesc, e.Registrations.Failed, e.Name, "failed")
		gauge(backsDesc, e.BackConnections, e.Name)
		var registered int64
		for _, g := range e.Gateways {
			if g.State == StateRegistered {
				registered++
			}
		}
		gauge(gatewaysDesc, registered, e.Name)
		for _, k := range []struct {
			kind string
			n    SessionCount
		}{{"http", e.Sessions.HTTP}, {"rdp", e.Sessions.RDP}} {
			gauge(sessionsOpenDesc, k.n.Open, e.Name, k.kind)
			counter(sessionsDesc, k.n.Total, e.Name, k.kind)
		}
		counter(refusedDesc, e.SessionsRefused.TooMany, e.Name, "too-many")
		counter(refusedDesc, e.SessionsRefused.LocalUnavailable, e.Name, "local-unavailable")
		counter(refusedDesc, e.SessionsRefused.BadRequest, e.Name, "bad-request")
		counter(bytesDesc, e.BytesToLocal, e.Name, "to_local")
		counter(bytesDesc, e.BytesFromLocal, e.Name, "from_local")
	}
}
