package tracecost

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/telemetry"
)

// BenchmarkSpanPairFloor measures what the official SDK alone costs per
// request that the gateway traces: one server span with one child client
// span, through sdktrace's batch span processor into the official OTLP
// http/protobuf exporter, whose HTTP client answers 200 without a network
// (the request is marshaled and its body read, nothing is sent). No
// gateway and no hooks: this is the floor that a gateway tracing every
// request with these spans cannot go below.
//
//	go test -run '^$' -bench SpanPairFloor -benchmem ./bench/tracecost/
//
// One op is one span pair. Rows:
//
//	attrs=0             start both spans, no attributes, not ended
//	attrs=hooks         the same plus the attributes our hooks set at the
//	                    end of each span (same keys, count and types)
//	attrs=hooks+export  the same plus End and the export of both spans
//	attrs=0+export      no attributes, End and export (for comparison)
//	attrs=hooks+direct  attrs=hooks+export with the gateway's own OTLP
//	                    exporter (telemetry.span_exporter: direct) in
//	                    place of the SDK's
//
// The export rows flush the processor before the timer stops, so every
// span's batching, marshaling and upload is inside the timed region (and
// allocs/op counts the exporter's goroutine too); the processor blocks
// instead of dropping when its queue is full, so no span escapes the
// measurement. µs/pair is wall time; cpu-µs/pair is the process's CPU time
// (every goroutine, GC included), the better figure on a shared machine.
func BenchmarkSpanPairFloor(b *testing.B) {
	for _, c := range []struct {
		name                  string
		attrs, export, direct bool
	}{
		{"attrs=0", false, false, false},
		{"attrs=hooks", true, false, false},
		{"attrs=hooks+export", true, true, false},
		{"attrs=0+export", false, true, false},
		{"attrs=hooks+direct", true, true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			tp, exported := newFloorProvider(b, c.direct)
			tracer := tp.Tracer(telemetry.ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
			serverOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
			clientOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
			ctx := context.Background()
			var server, client []attribute.KeyValue
			if c.attrs {
				server, client = hookAttrs()
			}

			b.ReportAllocs()
			cpu0 := cpuNow(b)
			b.ResetTimer()
			for range b.N {
				sctx, ss := tracer.Start(ctx, "GET /api", serverOpts...)
				_, cs := tracer.Start(sctx, "GET", clientOpts...)
				if c.attrs {
					cs.SetAttributes(client...)
				}
				if c.export {
					cs.End()
				}
				if c.attrs {
					ss.SetAttributes(server...)
				}
				if c.export {
					ss.End()
				}
			}
			if c.export {
				if err := tp.ForceFlush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuNow(b) - cpu0
			if n := exported.Load(); c.export && n != int64(2*b.N) {
				b.Fatalf("exported %d spans, want %d", n, 2*b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N), "µs/pair")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/pair")
		})
	}
}

// hookAttrs returns the attributes that the telemetry hooks set on the
// server and client span of a plain successful GET, first attempt, from
// an HTTP/1.1 client with a User-Agent: same keys, count and value types.
// The values are built once; the hooks build theirs per request (one
// string concatenation, for url.full), which is not the SDK's cost.
func hookAttrs() (server, client []attribute.KeyValue) {
	server = []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String("GET"),
		semconv.URLScheme("http"),
		semconv.URLPath("/api/items/1"),
		semconv.ServerAddress("gw.example"),
		semconv.ServerPort(8080),
		semconv.ClientAddress("192.0.2.10"),
		semconv.UserAgentOriginal("wrk/4.2.0"),
		semconv.HTTPRoute("/api"),
		telemetry.AttrService.String("web"),
		telemetry.AttrAttempts.Int(1),
		semconv.HTTPResponseStatusCode(200),
	}
	client = []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String("GET"),
		semconv.ServerAddress("10.0.0.1"),
		semconv.ServerPort(80),
		semconv.URLFull("http://10.0.0.1:80/api/items/1"),
		telemetry.AttrService.String("web"),
		telemetry.AttrInstanceID.String("web-1"),
		telemetry.AttrLBPolicy.String("round_robin"),
		telemetry.AttrAttempt.Int(0),
		telemetry.AttrHealthy.Int(2),
		semconv.HTTPResponseStatusCode(200),
	}
	return server, client
}

// newFloorProvider returns a tracer provider that samples everything into
// a blocking batch span processor and an OTLP http/protobuf exporter (the
// SDK's, or with direct the gateway's own), and
// a count of the spans exported so far.
func newFloorProvider(b *testing.B, direct bool) (*sdktrace.TracerProvider, *atomic.Int64) {
	b.Helper()
	ctx := context.Background()
	client := &http.Client{Transport: discardTransport{}}
	var exp sdktrace.SpanExporter
	var err error
	if direct {
		cfg := config.Default().Telemetry
		cfg.Endpoint, cfg.Protocol, cfg.SpanExporter = "http://127.0.0.1:4318", telemetry.ProtocolHTTP, telemetry.SpanExporterDirect
		exp, err = telemetry.NewSpanExporter(ctx, cfg, func(string) string { return "" }, client)
	} else {
		exp, err = otlptracehttp.New(ctx,
			otlptracehttp.WithEndpointURL("http://127.0.0.1:4318/v1/traces"),
			otlptracehttp.WithHTTPClient(client))
	}
	if err != nil {
		b.Fatal(err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("floor")),
		resource.WithTelemetrySDK())
	if err != nil {
		b.Fatal(err)
	}
	counted := &countingExporter{SpanExporter: exp}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		// Blocking: the default processor drops spans when its queue is
		// full, and a loop that outruns the exporter would then look
		// cheaper than it is.
		sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(counted, sdktrace.WithBlocking())),
	)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})
	return tp, &counted.n
}

// countingExporter counts the spans that the exporter took without error.
type countingExporter struct {
	sdktrace.SpanExporter
	n atomic.Int64
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		e.n.Add(int64(len(spans)))
	}
	return err
}

// discardTransport reads and drops the request body and answers 200 with
// an empty body, which the exporter takes as full success.
// discarded counts the bytes it read.
type discardTransport struct{}

var discarded atomic.Int64

func (discardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		n, _ := io.Copy(io.Discard, r.Body)
		discarded.Add(n)
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-protobuf"}}, Body: http.NoBody, Request: r}, nil
}

// cpuNow returns the CPU time (user and system) of the whole process.
func cpuNow(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
