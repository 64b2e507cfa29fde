// Package admin serves the operator endpoints: liveness, readiness and the
// explainable state of every service and instance.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

// Options supply the state the admin endpoints show. Every func must be safe
// for concurrent use. Nil funcs show nothing.
type Options struct {
	Ready     func() bool
	Services  func() []health.ServiceStatus
	Routes    func() []gateway.RouteInfo
	Discovery func() discovery.Status
	Balance   func() []gateway.BalanceInfo
	// Extra handlers mounted on the admin mux (e.g. /metrics), by pattern.
	Extra map[string]http.Handler
}

// New returns the admin handler.
func New(opt Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", dashboard(opt))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if opt.Ready != nil && !opt.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, servicesView(opt))
	})
	mux.HandleFunc("GET /api/v1/routes", func(w http.ResponseWriter, r *http.Request) {
		var routes []gateway.RouteInfo
		if opt.Routes != nil {
			routes = opt.Routes()
		}
		writeJSON(w, map[string]any{"routes": routes})
	})
	for pattern, h := range opt.Extra {
		mux.Handle(pattern, h)
	}
	return mux
}

// ServicesResponse is the body of GET /api/v1/services.
type ServicesResponse struct {
	Services  []health.ServiceStatus `json:"services"`
	Routes    []gateway.RouteInfo    `json:"routes"`
	Discovery DiscoveryView          `json:"discovery"`
	// Balancing shows each service's policy and, per routable instance,
	// its configured and effective weight and requests in flight.
	Balancing []gateway.BalanceInfo `json:"balancing"`
}

// DiscoveryView shows the freshness of the discovery source.
type DiscoveryView struct {
	Provider    string     `json:"provider"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  float64    `json:"age_seconds"`
	Stale       bool       `json:"stale"`
	LastError   string     `json:"last_error,omitempty"`
	ErrorSince  *time.Time `json:"error_since,omitempty"`
}

func servicesView(opt Options) ServicesResponse {
	out := ServicesResponse{Services: []health.ServiceStatus{}, Routes: []gateway.RouteInfo{}}
	if opt.Services != nil {
		out.Services = opt.Services()
	}
	if opt.Routes != nil {
		out.Routes = opt.Routes()
	}
	out.Balancing = []gateway.BalanceInfo{}
	if opt.Balance != nil {
		out.Balancing = opt.Balance()
	}
	if opt.Discovery != nil {
		st := opt.Discovery()
		out.Discovery = DiscoveryView{Provider: st.Provider, LastError: st.LastError, Stale: st.LastError != ""}
		if !st.LastSuccess.IsZero() {
			t := st.LastSuccess
			out.Discovery.LastSuccess = &t
			out.Discovery.AgeSeconds = time.Since(t).Round(time.Millisecond).Seconds()
		}
		if !st.ErrorSince.IsZero() {
			t := st.ErrorSince
			out.Discovery.ErrorSince = &t
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
