package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/gateway"
)

// observability is what telemetry contributes to the wiring. Every field's
// zero value means "off".
type observability struct {
	gatewayHooks  gateway.Hooks
	onProbe       func(service, id string, latency time.Duration, err error)
	onTransition  func(service, id string, routable bool, reason string)
	adminHandlers map[string]http.Handler
}

func newObservability(cfg *config.Config, log *slog.Logger) (*observability, error) {
	return &observability{}, nil
}

// bind gives telemetry access to the running components (for gauges).
func (o *observability) bind(a *App) error { return nil }

// shutdown flushes and stops exporters.
func (o *observability) shutdown(ctx context.Context) error { return nil }
