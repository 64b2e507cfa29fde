package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// captureTransport keeps the body of every request and answers 200.
type captureTransport struct{ bodies [][]byte }

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.bodies = append(c.bodies, b)
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-protobuf"}}, Body: http.NoBody, Request: r}, nil
}

// officialRequest returns what the SDK's OTLP exporter sends for spans,
// as the official proto type.
func officialRequest(t *testing.T, spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	capture := &captureTransport{}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL("http://127.0.0.1:4318/v1/traces"),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: capture}))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if len(capture.bodies) != 1 {
		t.Fatalf("the official exporter sent %d requests, want 1", len(capture.bodies))
	}
	return unmarshalRequest(t, capture.bodies[0])
}

func unmarshalRequest(t *testing.T, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	return req
}

// recordSpans runs f with two tracers of one provider and one of a
// second provider (another resource), and returns every span ended, in
// the order they ended.
func recordSpans(t testing.TB, f func(a, b, other trace.Tracer)) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("enc-test"), attribute.Int("answer", 42))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec))
	other := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("other"))),
		sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = other.Shutdown(context.Background()) })
	f(tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		tp.Tracer("second", trace.WithInstrumentationVersion("1.2.3"), trace.WithInstrumentationAttributes(attribute.String("scope.k", "v"))),
		other.Tracer(""))
	return rec.Ended()
}

func TestOTLPEncoderMatchesOfficial(t *testing.T) {
	long := strings.Repeat("x", 300) // lengths that need two varint bytes
	huge := strings.Repeat("y", 20000)
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	spans := recordSpans(t, func(a, b, other trace.Tracer) {
		start := time.Unix(1700000000, 123456789)
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote.WithTraceState(ts))
		ctx, server := a.Start(ctx, "GET /api", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("link.k", "v")}}))
		_, client := a.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(time.Millisecond)))
		client.SetAttributes(
			attribute.String("s", "value"), attribute.String("empty", ""), attribute.String("long", long),
			attribute.Bool("t", true), attribute.Bool("f", false),
			attribute.Int("zero", 0), attribute.Int("neg", -7), attribute.Int64("big", 1<<62),
			attribute.Float64("pi", 3.14159), attribute.Float64("fzero", 0),
			attribute.StringSlice("ss", []string{"a", "", long}), attribute.BoolSlice("bs", []bool{true, false}),
			attribute.IntSlice("is", []int{1, -1, 0}), attribute.Float64Slice("fs", []float64{0.5, 0}),
			attribute.ByteSlice("bytes", []byte{0, 1, 2}),
			attribute.Slice("mixed", attribute.StringValue("m"), attribute.IntValue(3)),
			attribute.Map("map", attribute.String("k", "v"), attribute.Int("n", 1)),
		)
		client.RecordError(errors.New("dial tcp: connection refused"), trace.WithTimestamp(start.Add(2*time.Millisecond)))
		client.SetStatus(codes.Error, "dial tcp: connection refused")
		client.End(trace.WithTimestamp(start.Add(3 * time.Millisecond)))
		server.SetAttributes(attribute.String("huge", huge), semconv.HTTPResponseStatusCode(502))
		server.SetStatus(codes.Error, "")
		server.End(trace.WithTimestamp(start.Add(4 * time.Millisecond)))

		_, root := other.Start(context.Background(), "root", trace.WithSpanKind(trace.SpanKindProducer))
		root.End()
		// A new scope of the first resource after the second resource:
		// the groups move.
		_, ok := b.Start(context.Background(), "internal")
		ok.AddEvent("plain")
		ok.SetStatus(codes.Ok, "ignored for ok")
		ok.End()
		_, again := a.Start(context.Background(), "again", trace.WithSpanKind(trace.SpanKindConsumer))
		again.End()
	})
	if len(spans) != 5 {
		t.Fatalf("recorded %d spans, want 5", len(spans))
	}

	want := officialRequest(t, spans)
	var enc otlpEncoder
	for round := range 2 { // the second batch reuses the buffers
		got := unmarshalRequest(t, enc.encode(spans))
		sortResources(want)
		sortResources(got)
		if !proto.Equal(got, want) {
			t.Fatalf("round %d: the direct encoding differs from the official exporter's:\ngot:\n%s\nwant:\n%s", round,
				prototext.Format(got), prototext.Format(want))
		}
	}
	if n := len(want.ResourceSpans); n != 2 {
		t.Errorf("%d resource spans, want 2 (the test must cover grouping)", n)
	}
}

// sortResources puts a request's resources in the order of their first
// attribute's value: the official transform lists them in map order.
func sortResources(r *coltracepb.ExportTraceServiceRequest) {
	key := func(i int) string {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r.ResourceSpans[i].Resource)
		return string(b)
	}
	idx := make([]int, len(r.ResourceSpans))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(key(a), key(b)) })
	sorted := make([]*tracepb.ResourceSpans, 0, len(idx))
	for _, i := range idx {
		sorted = append(sorted, r.ResourceSpans[i])
	}
	r.ResourceSpans = sorted
}

func TestOTLPEncoderRepairsInvalidUTF8(t *testing.T) {
	spans := recordSpans(t, func(a, _, _ trace.Tracer) {
		_, s := a.Start(context.Background(), "GET /bad\xff")
		s.SetAttributes(attribute.String("user_agent.original", "curl\xc3"))
		s.End()
	})
	var enc otlpEncoder
	got := unmarshalRequest(t, enc.encode(spans)) // fails on invalid UTF-8
	sp := got.ResourceSpans[0].ScopeSpans[0].Spans[0]
	if sp.Name != "GET /bad\uFFFD" || sp.Attributes[0].Value.GetStringValue() != "curl\uFFFD" {
		t.Errorf("name %q, attribute %q: want the invalid bytes replaced", sp.Name, sp.Attributes[0].Value.GetStringValue())
	}
}

func TestOTLPEncoderScopeCacheIsBounded(t *testing.T) {
	var enc otlpEncoder
	for i := range 200 {
		enc.scope(instrumentation.Scope{Name: strings.Repeat("s", i)})
	}
	if n := len(enc.scopeMsg); n > 65 {
		t.Errorf("scope cache holds %d entries", n)
	}
}

// BenchmarkSpanExport measures one export of a batch of 512 spans (256
// server+client pairs with the gateway's attributes) to an HTTP client
// that drops the body: the direct exporter against the SDK's.
//
//	go test -run '^$' -bench SpanExport -benchmem ./telemetry/
func BenchmarkSpanExport(b *testing.B) {
	spans := recordSpans(b, func(a, _, _ trace.Tracer) {
		for range 256 {
			ctx, s := a.Start(context.Background(), "GET /api", trace.WithSpanKind(trace.SpanKindServer))
			_, c := a.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
			c.SetAttributes(
				semconv.HTTPRequestMethodKey.String("GET"), semconv.ServerAddress("10.0.0.1"), semconv.ServerPort(80),
				AttrService.String("web"), AttrInstanceID.String("web-1"), semconv.URLFull("http://10.0.0.1:80/api/items/1"),
				AttrLBPolicy.String("round_robin"), AttrWeight.Float64(1), AttrAttempt.Int(0), AttrHealthy.Int(2),
				semconv.HTTPResponseStatusCode(200))
			c.End()
			s.SetAttributes(
				semconv.HTTPRequestMethodKey.String("GET"), semconv.URLScheme("http"), semconv.URLPath("/api/items/1"),
				semconv.ServerAddress("gw.example"), semconv.ServerPort(8080), semconv.ClientAddress("192.0.2.10"),
				semconv.UserAgentOriginal("wrk/4.2.0"), semconv.HTTPRoute("/api"), AttrService.String("web"),
				AttrAttempts.Int(1), semconv.HTTPResponseStatusCode(200))
			s.End()
		}
	})
	client := &http.Client{Transport: discardBodies{}}
	for _, c := range []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"exporter=direct", func() (sdktrace.SpanExporter, error) {
			return newDirectExporter(settings{tracesEndpoint: "http://127.0.0.1:4318", tracesProtocol: ProtocolHTTP}, noEnv, client)
		}},
		{"exporter=sdk", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL("http://127.0.0.1:4318/v1/traces"),
				otlptracehttp.WithHTTPClient(client))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			exp, err := c.exp()
			if err != nil {
				b.Fatal(err)
			}
			defer exp.Shutdown(context.Background())
			b.ReportAllocs()
			for b.Loop() {
				if err := exp.ExportSpans(context.Background(), spans); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(spans)), "ns/span")
		})
	}
}

// discardBodies reads and drops every request body and answers 200.
type discardBodies struct{}

func (discardBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}
