package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// blockingExporter holds every export until release is closed.
type blockingExporter struct {
	release  chan struct{}
	mu       sync.Mutex
	exported int
}

func (e *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	e.exported += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *blockingExporter) Shutdown(context.Context) error { return nil }

func (e *blockingExporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exported
}

// blockingTransport holds every OTLP http/protobuf request until release
// is closed, then counts its spans and answers 200.
type blockingTransport struct {
	release chan struct{}
	mu      sync.Mutex
	spans   int
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-b.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, err
	}
	b.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			b.spans += len(ss.Spans)
		}
	}
	b.mu.Unlock()
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (b *blockingTransport) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spans
}

func TestAFullQueueDropsAndCountsSpansWithoutBlockingRequests(t *testing.T) {
	for _, path := range []string{"sdk", "records"} {
		t.Run(path, func(t *testing.T) {
			b := newBackend(t)
			release := make(chan struct{})
			var logs testenv.SyncBuffer
			opt := Options{
				Config:       config.Default().Telemetry,
				Getenv:       noEnv,
				Logger:       newTextLogger(&logs),
				MaxQueueSize: 4,
				BatchTimeout: 10 * time.Millisecond,
			}
			var count func() int
			if path == "sdk" {
				exp := &blockingExporter{release: release}
				opt.SpanExporter, count = exp, exp.count
			} else {
				tr := &blockingTransport{release: release}
				opt.Config.Endpoint, opt.Config.Protocol = "http://127.0.0.1:4318", ProtocolHTTP
				opt.ExportClient, count = &http.Client{Transport: tr}, tr.count
			}
			tel, err := New(context.Background(), opt)
			if err != nil {
				t.Fatal(err)
			}
			if (tel.rq != nil) != (path == "records") {
				t.Fatalf("record path: %v", tel.rq != nil)
			}
			r := newRigFrom(t, tel, []discovery.Instance{{ID: "web-1", Address: b.addr()}})

			start := time.Now()
			for i := range 10 {
				if got := r.do(t, "GET", "/api", strconv.Itoa(i), nil); got != 200 {
					t.Fatalf("status %d", got)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("10 requests took %s with a stuck exporter", d)
			}
			// 20 spans ended, at most 4 in flight while the exporter is stuck.
			if got := tel.DroppedSpans(); got != 16 {
				t.Errorf("dropped %d spans, want 16", got)
			}
			if n := strings.Count(logs.String(), "span queue full"); n != 1 {
				t.Errorf("queue-full warning logged %d times, want once:\n%s", n, logs.String())
			}
			wantSeries(t, scrape(t, tel), "switchyard_telemetry_spans_dropped_total", " 16")
			close(release)
			if err := tel.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.do(t, "GET", "/api", "after", nil)
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := count(); got != 6 {
				t.Errorf("exported %d spans, want the 4 queued and the 2 after the queue drained", got)
			}
		})
	}
}

func TestADeadCollectorCostsDroppedSpansNotLatencyOrLogSpam(t *testing.T) {
	// The OTLP exporter reads its own timeout from the environment.
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			b := newBackend(t)
			cfg := config.Default().Telemetry
			cfg.Endpoint = "http://" + testenv.DeadAddr(t)
			cfg.Protocol = proto
			var logs testenv.SyncBuffer
			tel, err := New(context.Background(), Options{Config: cfg, Getenv: noEnv, Logger: newTextLogger(&logs), BatchTimeout: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !tel.Tracing() {
				t.Fatal("tracing off with an endpoint")
			}
			r := newRigFrom(t, tel, []discovery.Instance{{ID: "web-1", Address: b.addr()}})
			start := time.Now()
			for i := range 50 {
				r.do(t, "GET", "/api", strconv.Itoa(i), nil)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("50 requests took %s with a dead collector", d)
			}
			deadline := time.Now().Add(20 * time.Second)
			for tel.DroppedSpans() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no dropped spans counted")
				}
				time.Sleep(20 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start = time.Now()
			tel.Shutdown(ctx)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("shutdown took %s, past its 1s deadline", d)
			}
			if n := strings.Count(logs.String(), "level=WARN"); n > 3 {
				t.Errorf("%d warnings for one dead collector:\n%s", n, logs.String())
			}
		})
	}
}

// otlpReceiver is an OTLP/HTTP endpoint that keeps the metric names of
// every /v1/metrics export and answers each with an empty (valid) response.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	names map[string]bool
	posts int
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{names: map[string]bool{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/metrics" {
			var req colmetricpb.ExportMetricsServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				t.Errorf("bad OTLP metrics body: %v", err)
			}
			o.mu.Lock()
			o.posts++
			for _, rm := range req.ResourceMetrics {
				for _, sm := range rm.ScopeMetrics {
					for _, m := range sm.Metrics {
						o.names[m.Name] = true
					}
				}
			}
			o.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *otlpReceiver) seen(name string) (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.posts, o.names[name]
}

func TestMetricsGoOverOTLPWhenAnEndpointIsSet(t *testing.T) {
	recv := newOTLPReceiver(t)
	b := newBackend(t)
	cfg := config.Default().Telemetry
	cfg.Endpoint, cfg.Protocol = recv.srv.URL, ProtocolHTTP
	env := map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "50"}
	tel, err := New(context.Background(), Options{Config: cfg, Getenv: func(k string) string { return env[k] }, Logger: newTextLogger(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigFrom(t, tel, []discovery.Instance{{ID: "web-1", Address: b.addr()}})
	r.do(t, "GET", "/api", "x", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := recv.seen(MetricRequests); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no OTLP metrics export with switchyard.requests")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Prometheus still sees the same measurements.
	wantSeries(t, scrape(t, tel), "switchyard_requests_total", `route="/api"`, "} 1")
	before, _ := recv.seen(MetricRequests)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after, _ := recv.seen(MetricRequests); after <= before {
		t.Errorf("shutdown did not push metrics a last time (%d exports before, %d after)", before, after)
	}
}
