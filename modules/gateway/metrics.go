package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tildegate/tildegate/modules/broker"
)

// descNames counts the configured names by kind.
var descNames = prometheus.NewDesc("tildegate_names",
	"Names the gateway routes, by kind: direct (web servers it reaches), back (an agent), rdp (native RDP targets).",
	[]string{"kind"}, nil)

// namesCollector reports descNames from the running configuration.
type namesCollector struct{}

// Describe implements prometheus.Collector.
func (namesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descNames }

// Collect implements prometheus.Collector.
func (namesCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"direct": 0, "back": 0, "rdp": 0}
	for _, n := range CurrentStatus().Names {
		for _, k := range n.Kinds {
			counts[k]++
		}
	}
	for kind, n := range counts {
		ch <- prometheus.MustNewConstMetric(descNames, prometheus.GaugeValue, float64(n), kind)
	}
}

// registerMetrics adds the gateway's metrics to a config's registry.
func registerMetrics(reg prometheus.Registerer) error {
	if err := broker.RegisterMetrics(reg); err != nil {
		return err
	}
	return broker.RegisterCollectors(reg, namesCollector{})
}
