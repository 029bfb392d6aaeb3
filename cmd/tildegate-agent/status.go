package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tildegate/tildegate/agent"
	"go.uber.org/zap"
)

// Time limits of the status server.
const (
	// statusReadTimeout bounds reading a request.
	statusReadTimeout = 10 * time.Second
	// statusWriteTimeout bounds writing an answer.
	statusWriteTimeout = 30 * time.Second
	// statusShutdownTimeout bounds the wait for answers in flight when the
	// agent stops.
	statusShutdownTimeout = 2 * time.Second
)

// startStatus serves -status-addr: /ready, /status and /metrics of a. It
// does nothing when addr is empty. It returns the function that stops the
// server.
func startStatus(addr string, a *agent.Agent, log *zap.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-status-addr: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("the status server listens beyond loopback: whoever reaches it sees the entries' names, " +
			"gateways and proxy users; keep it behind a firewall")
	}
	log.Info("status server listening", zap.String("addr", ln.Addr().String()))

	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tildegate_agent_build_info",
			Help:        "Always 1; the version label is the agent's.",
			ConstLabels: prometheus.Labels{"version": version()},
		}, func() float64 { return 1 }))
	h := statusHandler{a: a, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", h.ready)
	mux.HandleFunc("GET /status", h.status)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: statusReadTimeout,
		ReadTimeout:       statusReadTimeout,
		WriteTimeout:      statusWriteTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("status")),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("the status server stopped: " + err.Error())
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), statusShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// statusHandler answers /ready and /status.
type statusHandler struct {
	a       *agent.Agent
	started time.Time
}

// notReady is an entry that /ready lists: why it is not registered.
type notReady struct {
	Name        string         `json:"name"`
	Position    string         `json:"position"`
	State       agent.State    `json:"state"`
	Since       time.Time      `json:"since,omitzero"`
	RetryAt     time.Time      `json:"retry_at,omitzero"`
	Refusal     *agent.Refusal `json:"refusal,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt time.Time      `json:"last_error_at,omitzero"`
}

// ready answers 200 when every entry is registered, and 503 with the
// entries that are not, or when there is none.
func (h statusHandler) ready(w http.ResponseWriter, _ *http.Request) {
	st := h.a.Status()
	var waiting []notReady
	for _, e := range st.Entries {
		if e.State != agent.StateRegistered {
			waiting = append(waiting, notReady{Name: e.Name, Position: e.Position, State: e.State, Since: e.Since,
				RetryAt: e.RetryAt, Refusal: e.Refusal, LastError: e.LastError, LastErrorAt: e.LastErrorAt})
		}
	}
	switch {
	case len(st.Entries) == 0:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"ready": false, "reason": "no entries: the configuration lists none",
		})
	case len(waiting) > 0:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"ready":          false,
			"reason":         fmt.Sprintf("%d of %d entries not registered", len(waiting), len(st.Entries)),
			"not_registered": waiting,
		})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ready": true, "entries": len(st.Entries)})
	}
}

// status answers the agent's version, start time, open-file budget and
// every entry's status.
func (h statusHandler) status(w http.ResponseWriter, _ *http.Request) {
	st := h.a.Status()
	writeJSON(w, http.StatusOK, struct {
		Version   string              `json:"version"`
		Started   time.Time           `json:"started"`
		OpenFiles agent.FileBudget    `json:"open_files"`
		Entries   []agent.EntryStatus `json:"entries"`
	}{version(), h.started, st.OpenFiles, st.Entries})
}

// writeJSON answers v as indented JSON with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
