package tracecost

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/telemetry"
)

// BenchmarkRecordedRequest measures what a recorded (sampled) request
// costs the gateway from end to end: the hooks, the spans (the SDK's, or
// with the direct exporter the gateway's span records), the batch queue
// and the exporter, whose HTTP client reads and drops
// every request body without a network (discardTransport). The upstream
// answers at once (okTransport): no sockets anywhere, so the figure is the
// gateway's own CPU.
//
//	go test -run '^$' -bench RecordedRequest -benchmem -count 6 ./bench/tracecost/
//
// One op is one request (a server span and one client span). Rows:
//
//	exporter=none         no tracing (metrics only: the default)
//	exporter=noop         tracing at 100%, spans dropped at export (the
//	                      request path and the SDK, no encoding)
//	exporter=sdk          the SDK's OTLP http/protobuf exporter
//	exporter=sdk+gzip     the same with gzip compression
//	exporter=direct       the gateway's own OTLP http/protobuf exporter
//	                      (telemetry.span_exporter: direct): span records,
//	                      no SDK spans
//	exporter=direct+gzip  the same with gzip compression
//
// sent-B/op is what the exporter posted per request (compressed or not).
//
// Spans are flushed every flushEvery requests and before the timer stops,
// so every span's export is inside the timed region and none is dropped
// (checked); batches hold up to 512 spans, the SDK's default. cpu-µs/op is the process's CPU time
// (every goroutine, GC included), the better figure on a shared machine;
// allocs/op counts the export goroutines too.
func BenchmarkRecordedRequest(b *testing.B) {
	direct := func(env map[string]string) func(*testing.B, *telemetry.Options) {
		return func(_ *testing.B, o *telemetry.Options) {
			o.Config.Endpoint, o.Config.Protocol, o.Config.SpanExporter = "http://127.0.0.1:4318", telemetry.ProtocolHTTP, telemetry.SpanExporterDirect
			o.ExportClient = &http.Client{Transport: discardTransport{}}
			o.Getenv = func(k string) string { return env[k] }
		}
	}
	sdk := func(opts ...otlptracehttp.Option) func(*testing.B, *telemetry.Options) {
		return func(b *testing.B, o *telemetry.Options) { o.SpanExporter = officialHTTP(b, opts...) }
	}
	for _, row := range []struct {
		name  string
		setup func(*testing.B, *telemetry.Options)
	}{
		{"exporter=none", func(*testing.B, *telemetry.Options) {}},
		{"exporter=noop", func(_ *testing.B, o *telemetry.Options) { o.SpanExporter = tracetest.NewNoopExporter() }},
		{"exporter=sdk", sdk()},
		{"exporter=sdk+gzip", sdk(otlptracehttp.WithCompression(otlptracehttp.GzipCompression))},
		{"exporter=direct", direct(nil)},
		{"exporter=direct+gzip", direct(map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})},
	} {
		b.Run(row.name, func(b *testing.B) {
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg := config.Default().Telemetry
			cfg.Sampler, cfg.SamplerArg = "parentbased_always_on", 1
			opt := telemetry.Options{Config: cfg, Getenv: func(string) string { return "" }, Logger: quiet,
				// Room for the spans of flushEvery requests: a drop would
				// make a row look cheaper than it is (checked below). Not
				// more: a huge queue costs every GC cycle a scan.
				MaxQueueSize: 4 * flushEvery}
			row.setup(b, &opt)
			var counted *countingExporter
			if opt.SpanExporter != nil {
				counted = &countingExporter{SpanExporter: opt.SpanExporter}
				opt.SpanExporter = counted
			}
			sent := discarded.Load()
			tel, err := telemetry.New(context.Background(), opt)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = tel.Shutdown(ctx)
			})
			gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: tel.Hooks(), Transport: okTransport{}, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			gw.SetHealthy("web", []discovery.Instance{{ID: "web-1", Address: "10.0.0.1:80"}, {ID: "web-2", Address: "10.0.0.2:80"}}, false)
			gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
			req := httptest.NewRequest("GET", "http://gw.example:8080/api/items/1", nil)
			req.Header.Set("User-Agent", "wrk/4.2.0")
			req.RemoteAddr = "192.0.2.10:51234"
			w := &discardWriter{h: http.Header{}}

			b.ReportAllocs()
			cpu0 := cpuNow(b)
			b.ResetTimer()
			for i := range b.N {
				clear(w.h)
				gw.ServeHTTP(w, req)
				if i%flushEvery == flushEvery-1 {
					if err := tel.ForceFlush(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := tel.ForceFlush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu := cpuNow(b) - cpu0
			if counted != nil {
				if n := counted.n.Load(); n != int64(2*b.N) {
					b.Fatalf("exported %d spans, want %d (dropped %d)", n, 2*b.N, tel.DroppedSpans())
				}
			}
			if n := tel.DroppedSpans(); n > 0 {
				b.Fatalf("dropped %d spans", n)
			}
			b.ReportMetric(float64(discarded.Load()-sent)/float64(b.N), "sent-B/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

const flushEvery = 1024

// officialHTTP is the official OTLP http/protobuf exporter posting through
// discardTransport.
func officialHTTP(b *testing.B, opts ...otlptracehttp.Option) sdktrace.SpanExporter {
	exp, err := otlptracehttp.New(context.Background(), append([]otlptracehttp.Option{
		otlptracehttp.WithEndpointURL("http://127.0.0.1:4318/v1/traces"),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: discardTransport{}}),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return exp
}

// okTransport answers every upstream attempt 200 at once.
type okTransport struct{}

func (okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
