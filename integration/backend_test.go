package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// seen is what a test backend reports about the request it received.
type seen struct {
	Backend string      `json:"backend"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Query   string      `json:"query"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
}

// hostCookie is the __Host- cookie that /host-cookie sets.
const hostCookie = "__Host-sid=v4lue-0f-the-cookie; Path=/; Secure; HttpOnly"

// backend is a real HTTP server on loopback that answers the requests the
// gateway tests make.
type backend struct {
	*httptest.Server
	name string
	// release unblocks /stream after its first event.
	release chan struct{}
	// sick makes /health answer 503.
	sick atomic.Bool
}

// newBackend starts a backend named name; tlsOn gives it a self-signed
// certificate.
func newBackend(t *testing.T, name string, tlsOn bool) *backend {
	t.Helper()
	b := &backend{name: name, release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Backend: name, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login?from=redirect", http.StatusFound)
	})
	mux.HandleFunc("/redirect-absolute", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", "/doc")
		w.Header().Set("Refresh", "3; url=/later")
		http.Redirect(w, r, b.URL+"/abs", http.StatusSeeOther)
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "session=abc; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "pref=1; Path=/app; Domain=127.0.0.1")
		fmt.Fprint(w, "cookies set")
	})
	mux.HandleFunc("/host-cookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", hostCookie)
		w.Header().Add("Set-Cookie", "plain=1; Path=/")
		fmt.Fprint(w, "cookies set")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+":"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if b.sick.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	if tlsOn {
		b.Server = httptest.NewTLSServer(mux)
	} else {
		b.Server = httptest.NewServer(mux)
	}
	t.Cleanup(b.Close)
	return b
}

// hostPort is the backend's address without scheme.
func (b *backend) hostPort() string {
	return b.Listener.Addr().String()
}
