package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRoute compares a request through tildegate's /~~name with the
// same request through a plain reverse_proxy to the same backend, in one
// Caddy and one run. Compare ns/op and allocs/op of the two: the
// difference is what the routing costs. Run with -count to interleave.
func BenchmarkRoute(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(backend.Close)
	addr := backend.Listener.Addr().String()
	startGateway(b, globalOptions("")+fmt.Sprintf(`
http://localhost:%d {
	log_skip
	tildegate {
		server bench http://%s
	}
	reverse_proxy /plain/* http://%s
}
`, httpPort, addr, addr), "caddyfile")

	transport := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	for _, c := range []struct{ name, path string }{
		{"reverse_proxy", "/plain/x"},
		{"tildegate", "/~~bench/x"},
	} {
		b.Run(c.name, func(b *testing.B) {
			url := base + c.path
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Errorf("%s: status %d", c.path, res.StatusCode)
						return
					}
				}
			})
		})
	}
}
