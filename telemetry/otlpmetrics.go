package telemetry

import (
	"context"
	"strconv"
	"strings"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metricPusher sends what the Prometheus reader collects to the OTLP
// exporter every interval. Feeding both exports from one reader means every
// measurement on the request path is aggregated once: with a second SDK
// reader (a PeriodicReader) each Add and Record would be aggregated twice.
type metricPusher struct {
	reader   sdkmetric.Reader // the Prometheus exporter's reader
	exp      sdkmetric.Exporter
	interval time.Duration
	timeout  time.Duration
	stop     chan struct{}
	done     chan struct{}
}

func newMetricPusher(reader sdkmetric.Reader, exp sdkmetric.Exporter, getenv func(string) string) *metricPusher {
	p := &metricPusher{
		reader:   reader,
		exp:      exp,
		interval: envMillis(getenv, "OTEL_METRIC_EXPORT_INTERVAL", 60*time.Second),
		timeout:  envMillis(getenv, "OTEL_METRIC_EXPORT_TIMEOUT", 30*time.Second),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go p.run()
	return p
}

func (p *metricPusher) run() {
	defer close(p.done)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
			_ = p.push(ctx) // failures are logged by the exporter wrapper
			cancel()
		}
	}
}

func (p *metricPusher) push(ctx context.Context) error {
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(ctx, &rm); err != nil {
		return err
	}
	rm.ScopeMetrics = mergeScopes(rm.ScopeMetrics)
	return p.exp.Export(ctx, &rm)
}

// mergeScopes joins the metrics of equal scopes: what a producer hands the
// reader (the request-duration histogram) comes in a second ScopeMetrics
// of the SDK meter's scope, and the push shows one.
func mergeScopes(sms []metricdata.ScopeMetrics) []metricdata.ScopeMetrics {
	out := sms[:0]
	for _, sm := range sms {
		merged := false
		for i := range out {
			if out[i].Scope == sm.Scope {
				out[i].Metrics = append(out[i].Metrics, sm.Metrics...)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, sm)
		}
	}
	return out
}

// shutdown stops the loop, pushes once more and shuts the exporter down,
// within ctx. It must run before the meter provider shuts down.
func (p *metricPusher) shutdown(ctx context.Context) error {
	close(p.stop)
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := p.push(ctx)
	if e := p.exp.Shutdown(ctx); err == nil {
		err = e
	}
	return err
}

// envMillis reads a duration in milliseconds, as OTEL_* intervals are given.
func envMillis(getenv func(string) string, key string, def time.Duration) time.Duration {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return def
}
