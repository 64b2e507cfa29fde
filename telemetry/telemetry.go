// Package telemetry observes every hop of a request with OpenTelemetry:
// a server span per request and a client span per upstream attempt, metrics
// exported for Prometheus (and over OTLP when an endpoint is configured),
// and an opt-in JSON access log.
//
// It plugs into the gateway through gateway.Hooks and into the health
// checker through its OnProbe/OnTransition callbacks; it never sits in the
// request path otherwise. Export happens off the request path: spans go to
// a batch queue that drops (and counts) when full, so a slow or dead
// collector costs dropped spans, never latency. With the direct exporter
// (the default) a sampled request makes no SDK span objects (record.go);
// with the sdk exporter its spans go through the OpenTelemetry Go SDK.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
)

// ScopeName is the instrumentation scope of every span and metric.
const ScopeName = "github.com/switchyard-gw/switchyard"

// Options configure New. Only Config is required.
type Options struct {
	Config config.Telemetry
	// AccessLog enables the JSON access log (log.access), written to
	// AccessWriter (nil: os.Stdout).
	AccessLog    bool
	AccessWriter io.Writer
	Logger       *slog.Logger // nil: slog.Default()
	// Getenv reads the OTEL_* variables; nil: os.Getenv. The direct span
	// exporter reads its own (headers, TLS, timeouts) through it too; the
	// SDK's OTLP exporters read theirs from the process environment.
	Getenv func(string) string
	// SpanExporter, when set, replaces the OTLP trace exporter and turns
	// tracing on whatever the endpoint (tests, benchmarks); spans then go
	// through the SDK, as with the sdk exporter.
	SpanExporter sdktrace.SpanExporter
	// MaxQueueSize overrides the span queue size (0: OTEL_BSP_MAX_QUEUE_SIZE
	// or 2048).
	MaxQueueSize int
	// ExportClient, when set, is the HTTP client of http/protobuf span
	// export with the direct exporter (benchmarks).
	ExportClient *http.Client
	// BatchTimeout overrides how long spans wait before export (0: the
	// SDK default, 5s, or OTEL_BSP_SCHEDULE_DELAY).
	BatchTimeout time.Duration
}

// Telemetry owns the tracer and meter providers. Its hooks are safe for
// concurrent use. Create one with New and stop it with Shutdown.
type Telemetry struct {
	log    *slog.Logger
	set    settings
	access *slog.Logger // nil: access log off

	// tracing is on: spans go through tp (the sdk exporter, or one a
	// caller gave) or, with the direct exporter, through rq.
	tracing bool
	tp      *sdktrace.TracerProvider // nil: tracing off or the record path
	tracer  trace.Tracer
	// rq queues the spans of the record path (record.go) for the direct
	// exporter; nil otherwise.
	rq *recordQueue
	// head is tp's sampler's rule, applied by the Request hook before the
	// SDK is called.
	head headRule
	// keep and late are set with a failures+ sampler (aftersample.go):
	// the cap on traces kept after the fact, and the tracer that builds
	// their spans, which shares tp's span pipeline (late is nil on the
	// record path).
	keep *keeper
	late trace.Tracer
	// recent keeps the last recorded requests for the admin API; nil when
	// tracing is off.
	recent *recentTraces
	prop   propagation.TextMapPropagator
	spans  *spanCounter // nil: tracing off
	names  cowMap[nameKey, string]
	insts  cowMap[instKey, *instanceAttrs]
	attrs  attrPool
	// Span start options, made once: options passed one by one would be
	// boxed and put in a fresh slice on every request.
	serverOpts, newRootOpts, clientOpts []trace.SpanStartOption

	mp      *sdkmetric.MeterProvider // nil: metrics off
	pusher  *metricPusher            // nil: no OTLP metrics
	inst    *instruments
	metrics http.Handler

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the providers and exporters that the settings (config keys
// and OTEL_* variables) ask for. With no endpoint there is no trace
// exporter and nothing is logged about it; metrics are still served at
// MetricsHandler. With telemetry disabled every hook is nil.
func New(ctx context.Context, opt Options) (*Telemetry, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	set, err := resolve(opt.Config, opt.Getenv)
	if err != nil {
		return nil, err
	}
	if opt.MaxQueueSize > 0 {
		set.maxQueue = opt.MaxQueueSize
	}
	t := &Telemetry{log: opt.Logger, set: set}
	if opt.AccessLog {
		w := opt.AccessWriter
		if w == nil {
			w = os.Stdout
		}
		t.access = slog.New(slog.NewJSONHandler(w, nil))
	}
	if set.disabled {
		return t, nil
	}

	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(opt.Config.ServiceName)),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES still yields the rest.
		t.log.Warn("telemetry: resource attributes", "error", err)
	}

	if err := t.startMetrics(ctx, res, opt.Getenv); err != nil {
		return nil, err
	}
	if opt.SpanExporter != nil || set.tracesEndpoint != "" {
		if err := t.startTracing(ctx, res, opt); err != nil {
			_ = t.Shutdown(ctx) // stops what startMetrics started
			return nil, err
		}
	}
	return t, nil
}

func (t *Telemetry) startTracing(ctx context.Context, res *resource.Resource, opt Options) error {
	exp := opt.SpanExporter
	if exp == nil {
		var err error
		if exp, err = newSpanExporter(ctx, t.set, opt); err != nil {
			return fmt.Errorf("telemetry: trace exporter: %w", err)
		}
	}
	sampler, err := newSampler(t.set.sampler, t.set.samplerArg)
	if err != nil {
		return err
	}
	t.spans = &spanCounter{limit: int64(t.set.maxQueue), log: t.log}
	t.recent = newRecentTraces(opt.Config.UIURL)
	t.head = newHeadRule(t.set.sampler, t.set.samplerArg)
	t.tracing = true
	if t.set.failures {
		t.keep = newKeeper(t.set.keepRate)
	}
	if direct, ok := exp.(*directExporter); ok && opt.SpanExporter == nil {
		// The record path: no SDK spans, the resource as the SDK's
		// tracer provider would have it (merged with the environment's).
		r, err := resource.Merge(resource.Environment(), res)
		if err != nil {
			t.log.Warn("telemetry: resource attributes", "error", err)
		}
		if r == nil {
			r = resource.Default()
		}
		t.rq = newRecordQueue(t.spans, direct, r, &t.attrs, opt.Getenv, opt.BatchTimeout)
	} else {
		bspOpts := []sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxQueueSize(t.set.maxQueue)}
		if opt.Getenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == "" {
			// Spans waiting for a batch to fill are live heap that every
			// garbage collection marks and that leaves less room before
			// the next one; see exportBatch.
			bspOpts = append(bspOpts, sdktrace.WithMaxExportBatchSize(exportBatch))
		}
		if opt.BatchTimeout > 0 {
			bspOpts = append(bspOpts, sdktrace.WithBatchTimeout(opt.BatchTimeout))
		}
		bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, c: t.spans}, bspOpts...)
		proc := newBoundedProcessor(bsp, t.spans)
		t.tp = sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sampler),
			sdktrace.WithIDGenerator(idGen{}),
			sdktrace.WithSpanProcessor(t.recent),
			sdktrace.WithSpanProcessor(proc),
		)
		t.tracer = t.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
		if t.set.failures {
			// Never shut down itself: tp's Shutdown stops the shared processor.
			late := sdktrace.NewTracerProvider(
				sdktrace.WithResource(res),
				sdktrace.WithSampler(sdktrace.AlwaysSample()),
				sdktrace.WithIDGenerator(idGen{}),
				sdktrace.WithSpanProcessor(t.recent),
				sdktrace.WithSpanProcessor(proc),
			)
			t.late = late.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
		}
	}
	t.serverOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	t.newRootOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}
	t.clientOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	t.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	if t.set.tracesEndpoint != "" && opt.SpanExporter == nil {
		t.log.Info("telemetry: exporting traces", "endpoint", t.set.tracesEndpoint, "protocol", t.set.tracesProtocol, "exporter", opt.Config.SpanExporter,
			"sampler", t.set.sampler, "sampler_arg", t.set.samplerArg, "failures", t.set.failures)
	}
	if t.inst != nil {
		if t.keep != nil {
			if err := t.keep.observe(t.inst.meter); err != nil {
				return err
			}
		}
		return t.inst.observeDroppedSpans(t.spans)
	}
	return nil
}

// exportBatch is the most spans exported at once unless
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE says otherwise: the SDK's 512 would keep
// up to 512 ended spans alive until a batch is full (the gateway's live
// heap is about 1 MiB, so they are marked by every collection and bring
// the next one closer). With 128, what the span handoff passes on at once,
// a batch is exported as soon as it is handed over. Measured with
// BenchmarkServedTracing (GOMAXPROCS=1): at 100% 9.5k fewer instructions
// per request (1,199.6M against 1,294.5M for 10,000 requests under
// callgrind) and 3.6 collections per 1000 requests against 4.2; at 1%
// 1.22 against 1.34.
const exportBatch = 128

// newSpanExporter builds the OTLP exporter. An endpoint from OTEL_* is left
// to the exporter, which reads it along with the other OTEL_EXPORTER_OTLP_*
// variables; one from telemetry.endpoint is passed explicitly (for
// http/protobuf as a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT).
func newSpanExporter(ctx context.Context, s settings, opt Options) (sdktrace.SpanExporter, error) {
	if opt.Config.SpanExporter != SpanExporterSDK {
		return newDirectExporter(s, opt.Getenv, opt.ExportClient)
	}
	if s.tracesProtocol == ProtocolHTTP {
		var opts []otlptracehttp.Option
		if !s.tracesFromEnv {
			opts = append(opts, otlptracehttp.WithEndpointURL(joinPath(s.tracesEndpoint, "/v1/traces")))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	var opts []otlptracegrpc.Option
	if !s.tracesFromEnv {
		opts = append(opts, otlptracegrpc.WithEndpointURL(s.tracesEndpoint))
	}
	return otlptracegrpc.New(ctx, opts...)
}

func newMetricExporter(ctx context.Context, s settings) (sdkmetric.Exporter, error) {
	if s.metricsProtocol == ProtocolHTTP {
		var opts []otlpmetrichttp.Option
		if !s.metricsFromEnv {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(joinPath(s.metricsEndpoint, "/v1/metrics")))
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	var opts []otlpmetricgrpc.Option
	if !s.metricsFromEnv {
		opts = append(opts, otlpmetricgrpc.WithEndpointURL(s.metricsEndpoint))
	}
	return otlpmetricgrpc.New(ctx, opts...)
}

func joinPath(base, p string) string { return strings.TrimRight(base, "/") + p }

// startMetrics sets up the meter provider with a Prometheus exporter on a
// private registry (served by MetricsHandler) and, with an endpoint, pushes
// what that reader collects over OTLP too (see metricPusher).
func (t *Telemetry) startMetrics(ctx context.Context, res *resource.Resource, getenv func(string) string) error {
	reg := promclient.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	durations := &durationProducer{}
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithProducer(durations))
	if err != nil {
		return fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if getenv("OTEL_METRICS_EXEMPLAR_FILTER") == "" {
		// Exemplars cost every sampled request a reservoir offer, and the
		// Prometheus text format at /metrics cannot show them.
		opts = append(opts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	var otlp sdkmetric.Exporter
	if t.set.metricsEndpoint != "" {
		if otlp, err = newMetricExporter(ctx, t.set); err != nil {
			return fmt.Errorf("telemetry: metric exporter: %w", err)
		}
	}
	t.mp = sdkmetric.NewMeterProvider(opts...)
	if otlp != nil {
		t.pusher = newMetricPusher(prom.Reader, &quietMetricExporter{Exporter: otlp, log: t.log}, getenv)
	}
	t.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{t.log}})
	t.inst, err = newInstruments(t.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL)))
	if err != nil {
		return fmt.Errorf("telemetry: instruments: %w", err)
	}
	durations.in.Store(t.inst)
	return nil
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t.tracing }

// MetricsHandler serves the Prometheus exposition of every switchyard
// metric; nil when telemetry is disabled.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// DroppedSpans returns the number of spans dropped so far because the
// queue was full or the export failed.
func (t *Telemetry) DroppedSpans() int64 {
	if t.spans == nil {
		return 0
	}
	return t.spans.dropped.Load()
}

// ForceFlush exports every span ended so far (tests, benchmarks).
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	switch {
	case t.rq != nil:
		return t.rq.forceFlush(ctx)
	case t.tp != nil:
		return t.tp.ForceFlush(ctx)
	}
	return nil
}

// Shutdown flushes pending spans and metrics and stops the exporters,
// giving up at ctx's deadline. Later calls return the first result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		var wg sync.WaitGroup
		var terr, merr error
		if t.tp != nil {
			wg.Add(1)
			go func() { defer wg.Done(); terr = t.tp.Shutdown(ctx) }()
		}
		if t.rq != nil {
			wg.Add(1)
			go func() { defer wg.Done(); terr = t.rq.shutdown(ctx) }()
		}
		if t.mp != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if t.pusher != nil {
					merr = t.pusher.shutdown(ctx)
				}
				merr = errors.Join(merr, t.mp.Shutdown(ctx))
			}()
		}
		wg.Wait()
		if terr != nil {
			terr = fmt.Errorf("flushing spans: %w", terr)
		}
		if merr != nil {
			merr = fmt.Errorf("flushing metrics: %w", merr)
		}
		t.shutdownErr = errors.Join(terr, merr)
		if n := t.DroppedSpans(); n > 0 {
			t.log.Warn("telemetry: spans dropped since start", "count", n)
		}
	})
	return t.shutdownErr
}

// slogPrinter adapts promhttp's error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn("metrics: " + fmt.Sprint(v...)) }
