package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// gateway is a running Caddy binary with tildegate: a TLS site routing the
// names of its balance.bin.
type gateway struct {
	*process
	httpsPort int
}

// startGateway starts a gateway whose balance.bin is balance, with short
// tunnel liveness times so that dead connections are found quickly.
func startGateway(t testing.TB, balance string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{httpsPort: freePort(t)}
	balancePath := filepath.Join(dir, "balance.bin")
	caddyfile := filepath.Join(dir, "Caddyfile")
	config := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	auto_https off
	persist_config off
	grace_period 2s
	log {
		format json
		level DEBUG
	}
}
https://127.0.0.1:%d {
	tls %s %s
	tildegate {
		balance_file %s
		tunnel {
			alive_interval 500ms
			dead_after 2s
			ticket_ttl 2s
			back_wait 3s
		}
	}
	respond "gateway"
}
`, freePort(t), freePort(t), g.httpsPort, g.httpsPort, bins.certFile, bins.keyFile, balancePath)
	for path, content := range map[string]string{balancePath: balance, caddyfile: config} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g.process = startProcess(t, "gateway", bins.caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	waitPort(t, g.process, g.address(), 10*time.Second)
	return g
}

// url is an address on the gateway's TLS site.
func (g *gateway) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", g.httpsPort, path)
}

// address is the gateway's TLS address for backbalance.bin.
func (g *gateway) address() string { return fmt.Sprintf("127.0.0.1:%d", g.httpsPort) }

// client trusts the gateway's certificate.
func client() *http.Client {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(bins.caFile)
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 128},
		Timeout:   60 * time.Second,
	}
}

// startAgent runs tildegate-agent with backbalance as its file.
func startAgent(t testing.TB, name, backbalance string, args ...string) *process {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backbalance.bin")
	if err := os.WriteFile(path, []byte(backbalance), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-config", path, "-ca", bins.caFile}, args...)
	return startProcess(t, name, bins.agent, args...)
}

// pattern is the repeated content of large test bodies.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// patternReader gives size bytes of pattern.
func patternReader(size int64) io.Reader {
	return io.LimitReader(&repeatReader{}, size)
}

type repeatReader struct{ off int }

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], pattern[(r.off+n)%len(pattern):])
	}
	r.off = (r.off + n) % len(pattern)
	return n, nil
}

// patternSum is the SHA-256 of size bytes of pattern.
func patternSum(size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, patternReader(size))
	return hex.EncodeToString(h.Sum(nil))
}

// newLocalService is the service behind an agent: it answers /hello with
// its name, /upload with the checksum of the body, /download?size=N with
// N bytes of pattern, and /ws as a websocket echo.
func newLocalService(t testing.TB, name string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, path %s, prefix %s", name, r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		_, _ = io.Copy(w, patternReader(size))
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, bytes.ToUpper(msg)); err != nil {
				return
			}
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}
