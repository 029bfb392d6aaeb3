package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tildegate/tildegate/modules/broker"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// maxHold bounds how long an administrator may hold a name's agent out.
const maxHold = 30 * 24 * time.Hour

// Admin is the admin API of tildegate, on Caddy's admin endpoint and
// behind its access control:
//
//	GET  /tildegate/names                          every name and how it is routed
//	GET  /tildegate/names/NAME                     one of them
//	GET  /tildegate/agents                         every back entry and its agent
//	GET  /tildegate/agents/NAME                    one of them
//	POST /tildegate/agents/NAME/disconnect[?hold=DURATION]
//
// disconnect drops the agent's registration; with hold, the gateway refuses
// that name's agent (code held, with the time left) until the hold ends,
// which an administrator does to drain a server. Each gateway holds its
// own.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tildegate",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes implements caddy.AdminRouter.
func (a *Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/tildegate/names", Handler: caddy.AdminHandlerFunc(a.names)},
		{Pattern: "/tildegate/names/", Handler: caddy.AdminHandlerFunc(a.name)},
		{Pattern: "/tildegate/agents", Handler: caddy.AdminHandlerFunc(a.agents)},
		{Pattern: "/tildegate/agents/", Handler: caddy.AdminHandlerFunc(a.agent)},
	}
}

func (a *Admin) names(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, r, http.MethodGet)
	}
	return writeJSON(w, CurrentStatus().Names)
}

// name serves /tildegate/names/NAME: what /tildegate/names lists for one
// name, without reading the others.
func (a *Admin) name(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, "/tildegate/names/")
	if name == "" || strings.Contains(name, "/") {
		return caddy.APIError{HTTPStatus: http.StatusNotFound,
			Err: fmt.Errorf("no such resource %s: want /tildegate/names/NAME", r.URL.Path)}
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, r, http.MethodGet)
	}
	st, ok := CurrentNameStatus(name)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no name %q", name)}
	}
	return writeJSON(w, st)
}

func (a *Admin) agents(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, r, http.MethodGet)
	}
	return writeJSON(w, CurrentStatus().Agents)
}

// agent serves /tildegate/agents/NAME, what /tildegate/agents lists for
// one back entry without reading the others, and its disconnect.
func (a *Admin) agent(w http.ResponseWriter, r *http.Request) error {
	name, action, slash := strings.Cut(strings.TrimPrefix(r.URL.Path, "/tildegate/agents/"), "/")
	switch {
	case name == "" || (slash && action != "disconnect"):
		return caddy.APIError{HTTPStatus: http.StatusNotFound,
			Err: fmt.Errorf("no such resource %s: want /tildegate/agents/NAME or /tildegate/agents/NAME/disconnect", r.URL.Path)}
	case action == "disconnect":
		return a.disconnect(w, r, name)
	case r.Method != http.MethodGet:
		return methodNotAllowed(w, r, http.MethodGet)
	}
	b := currentBroker()
	if b == nil {
		return noBackEntry(name, ": no tildegate handler runs")
	}
	st, ok := b.Agent(name)
	if !ok {
		return noBackEntry(name, "")
	}
	return writeJSON(w, st)
}

// disconnected is the answer to a disconnect.
type disconnected struct {
	Name string `json:"name"`
	// Connected reports whether an agent held the name and was dropped.
	Connected bool       `json:"connected"`
	HeldUntil *time.Time `json:"held_until,omitempty"`
}

// disconnect serves /tildegate/agents/NAME/disconnect.
func (a *Admin) disconnect(w http.ResponseWriter, r *http.Request, name string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, r, http.MethodPost)
	}
	var hold time.Duration
	if v := r.URL.Query().Get("hold"); v != "" {
		d, err := caddy.ParseDuration(v)
		if err != nil || d < 0 || d > maxHold {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest,
				Err: fmt.Errorf("hold=%q: want a duration such as 10m, at most %s", v, maxHold)}
		}
		hold = d
	}
	b := currentBroker()
	if b == nil {
		return noBackEntry(name, ": no tildegate handler runs")
	}
	known, connected := b.Disconnect(name, hold)
	if !known {
		return noBackEntry(name, "")
	}
	res := disconnected{Name: name, Connected: connected}
	if hold > 0 {
		until := time.Now().Add(hold)
		res.HeldUntil = &until
	}
	return writeJSON(w, res)
}

// noBackEntry answers a request for the back entry name, which the
// running configuration does not have, and why.
func noBackEntry(name, why string) error {
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no back entry named %q%s", name, why)}
}

// currentBroker returns the broker of the running handlers, if any runs.
func currentBroker() *broker.Broker {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	if len(liveHandlers.list) == 0 {
		return nil
	}
	return liveHandlers.list[len(liveHandlers.list)-1].broker
}

// methodNotAllowed refuses r's method, naming the allowed ones in the
// answer's Allow header and its error.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) error {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed,
		Err: fmt.Errorf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = (*Admin)(nil)
