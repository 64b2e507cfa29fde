// Package admin serves the operator endpoints: liveness, readiness and the
// explainable state of every service and instance.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

// Options supply the state the admin endpoints show. Every func must be safe
// for concurrent use. Nil funcs show nothing.
type Options struct {
	Ready    func() bool
	Services func() []health.ServiceStatus
	// Summaries lists every service without its instances and
	// ServicesNamed the named ones with theirs (health.Checker has both);
	// nil: derived from Services, at the cost of building every instance.
	Summaries     func() []health.ServiceStatus
	ServicesNamed func(names ...string) []health.ServiceStatus
	Routes        func() []gateway.RouteInfo
	Discovery     func() discovery.Status
	// Balance shows each service's policy, weights and requests in
	// flight; nil: none.
	Balance func() []gateway.BalanceInfo
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
		q, err := parseServicesQuery(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, servicesView(opt, q))
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

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
