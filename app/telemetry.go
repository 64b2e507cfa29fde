package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchyard-gw/switchyard/admin"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/telemetry"
)

// observability is what telemetry contributes to the wiring. Every field's
// zero value means "off".
type observability struct {
	gatewayHooks  gateway.Hooks
	onProbe       func(service, id string, latency time.Duration, err error)
	onTransition  func(service, id string, routable bool, reason string)
	adminHandlers map[string]http.Handler

	tel *telemetry.Telemetry
	// flushTimeout bounds shutdown when the caller's context has no deadline.
	flushTimeout time.Duration
}

func newObservability(cfg *config.Config, log *slog.Logger) (*observability, error) {
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		Config:    cfg.Telemetry,
		AccessLog: cfg.Log.Access,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	o := &observability{
		gatewayHooks: tel.Hooks(),
		onProbe:      tel.ProbeHook(),
		onTransition: tel.TransitionHook(),
		tel:          tel,
		flushTimeout: cfg.ShutdownTimeout,
	}
	if h := tel.MetricsHandler(); h != nil {
		o.adminHandlers = map[string]http.Handler{"GET /metrics": h}
	}
	if h := tel.RecentTracesHandler(); h != nil {
		o.adminHandlers["GET /api/v1/traces"] = h // tracing implies metrics
	}
	if o.adminHandlers != nil {
		// The page says so itself when tracing is off (no /api/v1/traces).
		o.adminHandlers["GET /traces"] = admin.TracesPage()
	}
	return o, nil
}

// bind gives telemetry access to the running components (for gauges) and
// wraps the discovery source so that its snapshots are counted and logged.
func (o *observability) bind(a *App) error {
	src, err := o.tel.ObserveDiscovery(a.source)
	if err != nil {
		return err
	}
	a.source = src
	return o.tel.ObserveHealth(a.checker.Services)
}

// shutdown flushes and stops exporters within ctx's deadline, or within
// shutdown_timeout when ctx has none.
func (o *observability) shutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.flushTimeout)
		defer cancel()
	}
	return o.tel.Shutdown(ctx)
}
