package broker

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/tildegate/tildegate/wire"
)

// metricsTestBroker returns a broker with stats for names n0..n(count-1):
// every third has a connected agent with one back connection and an open
// session, every fifth had a request and a session, and every seventh
// that is not a fifth had an RDP session and no request.
func metricsTestBroker(count int) *Broker {
	b := &Broker{regs: map[string]*registration{}}
	for i := range count {
		name := fmt.Sprintf("n%d", i)
		s := b.stats(name)
		if i%3 == 0 {
			r := &registration{muxes: []*muxConn{nil}}
			r.sessions[wire.KindRDP].Store(1)
			b.regs[name] = r
		}
		if i%5 == 0 {
			s.requests.Add(2)
			s.sessions[wire.KindHTTP].Add(1)
			s.bytesFromAgent.Add(100)
			s.unserved.limit.Add(1)
		} else if i%7 == 0 {
			s.sessions[wire.KindRDP].Add(1)
		}
	}
	return b
}

// TestNameSeries checks which series a name has: an agent's state from its
// first connection on, its traffic's from its first request or session on.
func TestNameSeries(t *testing.T) {
	b := metricsTestBroker(30)
	metricsBroker.Store(b)
	defer metricsBroker.CompareAndSwap(b, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{} // the per-name ones
	for _, f := range families {
		for _, m := range f.Metric {
			key := f.GetName()
			for _, l := range m.Label {
				key += fmt.Sprintf(" %s=%s", l.GetName(), l.GetValue())
			}
			if strings.Contains(key, " name=") {
				series[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"tildegate_agent_connected name=n3":                          1,
		"tildegate_back_connections name=n3":                         1,
		"tildegate_agent_connected name=n1":                          0,
		"tildegate_back_connections name=n1":                         0,
		"tildegate_agent_connected name=n15":                         1,
		"tildegate_requests_total name=n15":                          2,
		"tildegate_sessions kind=rdp name=n15":                       1,
		"tildegate_sessions kind=http name=n15":                      0,
		"tildegate_sessions_total kind=http name=n15":                1,
		"tildegate_sessions_total kind=rdp name=n15":                 0,
		"tildegate_tunnel_bytes_total direction=from_agent name=n15": 100,
		"tildegate_tunnel_bytes_total direction=to_agent name=n15":   0,
		"tildegate_unserved_requests_total name=n15 status=502":      0,
		"tildegate_unserved_requests_total name=n15 status=503":      1,
		"tildegate_unserved_requests_total name=n15 status=504":      0,
		"tildegate_requests_total name=n5":                           2,
		"tildegate_sessions_total kind=rdp name=n7":                  1,
		"tildegate_requests_total name=n7":                           0,
	} {
		if got, ok := series[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	// 30 names with an agent's two series, 6 + 4 used ones with 10 more.
	if want := 30*2 + 10*10; len(series) != want {
		t.Errorf("%d series, want %d", len(series), want)
	}
	for key := range series {
		fields := strings.Fields(key)
		if slices.Contains(fields, "name=n3") && fields[0] != "tildegate_agent_connected" && fields[0] != "tildegate_back_connections" {
			t.Errorf("a name with an agent but no request has %s", key)
		}
	}
}

// TestNameSeriesComeSorted checks that each family's series come in the
// order the registry sorts them into, so that its sort is cheap.
func TestNameSeriesComeSorted(t *testing.T) {
	b := metricsTestBroker(200)
	metricsBroker.Store(b)
	defer metricsBroker.CompareAndSwap(b, nil)
	ch := make(chan prometheus.Metric)
	go func() {
		collector{}.Collect(ch)
		close(ch)
	}()
	last := map[string][]string{}
	n := 0
	for m := range ch {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		var values []string
		for _, l := range out.Label { // sorted by label name
			values = append(values, l.GetValue())
		}
		family := m.Desc().String()
		if prev, ok := last[family]; ok && slices.Compare(prev, values) >= 0 {
			t.Fatalf("%v after %v in %s", values, prev, family)
		}
		last[family] = values
		n++
	}
	if want := 200*2 + (40+23)*10; n != want {
		t.Errorf("%d series, want %d", n, want)
	}
}

// BenchmarkScrape10000Names scrapes the per-name series of 10,000 names
// through a Prometheus handler, gzipped as Prometheus asks: names that had
// no request yet, and names that each had one.
func BenchmarkScrape10000Names(b *testing.B) {
	for _, used := range []bool{false, true} {
		b.Run(map[bool]string{false: "idle", true: "used"}[used], func(b *testing.B) {
			br := &Broker{}
			for i := range 10000 {
				s := br.stats(fmt.Sprintf("b%d", i))
				if used {
					s.requests.Add(1)
				}
			}
			metricsBroker.Store(br)
			defer metricsBroker.CompareAndSwap(br, nil)
			reg := prometheus.NewRegistry()
			if err := RegisterMetrics(reg); err != nil {
				b.Fatal(err)
			}
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept-Encoding", "gzip")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("scrape: %d %s", w.Code, w.Body)
				}
				b.ReportMetric(float64(w.Body.Len())/1e3, "kB-gzip")
			}
		})
	}
}
