package telemetry

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the server side of gzip
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
)

// testSpans are a few ended spans of two resources and two scopes.
func testSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	return recordSpans(t, func(a, b, other trace.Tracer) {
		ctx, s := a.Start(context.Background(), "GET /api", trace.WithSpanKind(trace.SpanKindServer))
		_, c := a.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
		c.End()
		s.End()
		_, x := b.Start(context.Background(), "x")
		x.End()
		_, y := other.Start(context.Background(), "y")
		y.End()
	})
}

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func wantSameRequest(t *testing.T, got, want *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	sortResources(got)
	sortResources(want)
	if !proto.Equal(got, want) {
		t.Fatalf("the collector got:\n%s\nwant what the SDK's exporter sends:\n%s", prototext.Format(got), prototext.Format(want))
	}
}

// otlpHTTPSink is an OTLP/HTTP collector that answers the first fail
// requests with status failWith and keeps the rest.
type otlpHTTPSink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	fail     int
	failWith int
	reqs     []*http.Request
	bodies   [][]byte // decompressed
}

func newOTLPHTTPSink(t *testing.T, fail, failWith int) *otlpHTTPSink {
	s := &otlpHTTPSink{fail: fail, failWith: failWith}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.reqs = append(s.reqs, r)
		if s.fail > 0 {
			s.fail--
			w.WriteHeader(s.failWith)
			return
		}
		s.bodies = append(s.bodies, b)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestDirectExporterOverHTTP(t *testing.T) {
	spans := testSpans(t)
	want := officialRequest(t, spans)
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[gz], func(t *testing.T) {
			sink := newOTLPHTTPSink(t, 0, 0)
			env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,authorization=Bearer%20s3cret"}
			if gz {
				env["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"] = "gzip"
			}
			exp, err := newDirectExporter(settings{tracesEndpoint: sink.srv.URL + "/base", tracesProtocol: ProtocolHTTP}, envMap(env), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(context.Background())
			for range 2 {
				if err := exp.ExportSpans(context.Background(), spans); err != nil {
					t.Fatal(err)
				}
			}
			if len(sink.bodies) != 2 {
				t.Fatalf("sink got %d requests, want 2", len(sink.bodies))
			}
			r := sink.reqs[0]
			if r.URL.Path != "/base/v1/traces" || r.Method != http.MethodPost {
				t.Errorf("%s %s, want POST /base/v1/traces", r.Method, r.URL.Path)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
				t.Errorf("Content-Type %q", ct)
			}
			if r.Header.Get("X-Tenant") != "acme" || r.Header.Get("Authorization") != "Bearer s3cret" {
				t.Errorf("headers %v, want those of OTEL_EXPORTER_OTLP_HEADERS", r.Header)
			}
			if got := r.Header.Get("Content-Encoding"); (got == "gzip") != gz {
				t.Errorf("Content-Encoding %q with gzip %v", got, gz)
			}
			for _, b := range sink.bodies {
				wantSameRequest(t, unmarshalRequest(t, b), want)
			}
		})
	}
}

func TestDirectExporterTracesEndpointIsTakenAsIs(t *testing.T) {
	sink := newOTLPHTTPSink(t, 0, 0)
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.srv.URL + "/custom"}
	exp, err := newDirectExporter(settings{tracesEndpoint: sink.srv.URL + "/custom", tracesProtocol: ProtocolHTTP}, envMap(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	if err := exp.ExportSpans(context.Background(), testSpans(t)); err != nil {
		t.Fatal(err)
	}
	if p := sink.reqs[0].URL.Path; p != "/custom" {
		t.Errorf("posted to %s, want /custom", p)
	}
}

func TestDirectExporterRetriesWhatMayPassAndNotTheRest(t *testing.T) {
	for _, c := range []struct {
		name      string
		failWith  int
		wantErr   string
		wantTries int
	}{
		{"503 then 200", http.StatusServiceUnavailable, "", 2},
		{"400", http.StatusBadRequest, "400 Bad Request", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := newOTLPHTTPSink(t, 1, c.failWith)
			exp, err := newDirectExporter(settings{tracesEndpoint: sink.srv.URL, tracesProtocol: ProtocolHTTP}, noEnv, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(context.Background())
			err = exp.ExportSpans(context.Background(), testSpans(t))
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("error %v, want %q", err, c.wantErr)
			}
			if len(sink.reqs) != c.wantTries {
				t.Errorf("%d requests, want %d", len(sink.reqs), c.wantTries)
			}
		})
	}
}

func TestDirectExporterSettingsErrorsNameTheVariable(t *testing.T) {
	for _, c := range []struct{ key, value string }{
		{"OTEL_EXPORTER_OTLP_HEADERS", "novalue"},
		{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"},
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "soon"},
		{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"},
	} {
		_, err := newDirectExporter(settings{tracesEndpoint: "https://collector.example:4318", tracesProtocol: ProtocolHTTP},
			envMap(map[string]string{c.key: c.value}), nil)
		if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.value) {
			t.Errorf("%s=%s: error %v, want one naming both", c.key, c.value, err)
		}
	}
}

// traceCollector is an OTLP/gRPC trace service that keeps what it gets.
type traceCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	md   []metadata.MD
}

func (c *traceCollector) Export(ctx context.Context, r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, r)
	c.md = append(c.md, md)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestDirectExporterOverGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &traceCollector{}
	sizes := &payloadSizes{}
	srv := grpc.NewServer(grpc.StatsHandler(sizes))
	coltracepb.RegisterTraceServiceServer(srv, col)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	spans := testSpans(t)
	want := officialRequest(t, spans)
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=acme", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
	exp, err := newDirectExporter(settings{tracesEndpoint: "http://" + lis.Addr().String(), tracesProtocol: ProtocolGRPC}, envMap(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	for range 2 {
		if err := exp.ExportSpans(context.Background(), spans); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop() // every stats handler call is done
	<-done
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.reqs) != 2 {
		t.Fatalf("collector got %d requests, want 2", len(col.reqs))
	}
	if got := col.md[0].Get("x-tenant"); len(got) != 1 || got[0] != "acme" {
		t.Errorf("metadata %v, want x-tenant: acme", col.md[0])
	}
	if len(sizes.in) == 0 || sizes.in[0].CompressedLength >= sizes.in[0].Length {
		t.Errorf("payloads %+v, want them compressed", sizes.in)
	}
	for _, r := range col.reqs {
		wantSameRequest(t, r, want)
	}
}

// payloadSizes keeps the sizes of the messages a gRPC server received.
type payloadSizes struct {
	mu sync.Mutex
	in []stats.InPayload
}

func (*payloadSizes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (*payloadSizes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (*payloadSizes) HandleConn(context.Context, stats.ConnStats)                       {}
func (p *payloadSizes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.mu.Lock()
		p.in = append(p.in, *in)
		p.mu.Unlock()
	}
}

func TestSpanExporterSettingPicksTheExporter(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		for _, name := range []string{SpanExporterDirect, SpanExporterSDK} {
			cfg := config.Default().Telemetry
			cfg.Endpoint, cfg.Protocol, cfg.SpanExporter = "http://127.0.0.1:4317", proto, name
			exp, err := NewSpanExporter(context.Background(), cfg, noEnv, nil)
			if err != nil {
				t.Fatalf("%s over %s: %v", name, proto, err)
			}
			if _, direct := exp.(*directExporter); direct != (name == SpanExporterDirect) {
				t.Errorf("span_exporter %s over %s built a %T", name, proto, exp)
			}
			_ = exp.Shutdown(context.Background())
		}
	}
}
