package rdp

import (
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tildegate/tildegate/modules/broker"
)

// Native RDP metrics, process-wide so that config reloads do not set them
// back; a name has series from its first session on.
var (
	rdpSessionsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tildegate_rdp_sessions",
		Help: "Open native RDP sessions, by name.",
	}, []string{"name"})
	rdpSessionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tildegate_rdp_sessions_total",
		Help: "Native RDP sessions opened, by name.",
	}, []string{"name"})
	rdpBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tildegate_rdp_bytes_total",
		Help: "Bytes of native RDP sessions, by name and direction (from_client, to_client).",
	}, []string{"name", "direction"})
)

// registerMetrics adds the RDP metrics to a config's registry.
func registerMetrics(reg prometheus.Registerer) error {
	return broker.RegisterCollectors(reg, rdpSessionsOpen, rdpSessionsTotal, rdpBytes)
}

// sessionMetrics counts one session of name as open, and returns the
// server connection wrapped so that its bytes are counted as they flow,
// and the function that counts the session closed.
func sessionMetrics(name string, server net.Conn) (net.Conn, func()) {
	name = strings.ToLower(name)
	open := rdpSessionsOpen.WithLabelValues(name)
	open.Inc()
	rdpSessionsTotal.WithLabelValues(name).Inc()
	counted := &countingConn{Conn: server,
		fromServer: rdpBytes.WithLabelValues(name, "to_client"),
		toServer:   rdpBytes.WithLabelValues(name, "from_client")}
	return counted, open.Dec
}

// countingConn counts the bytes read from and written to the server.
type countingConn struct {
	net.Conn
	fromServer, toServer prometheus.Counter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.fromServer.Add(float64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.toServer.Add(float64(n))
	return n, err
}
