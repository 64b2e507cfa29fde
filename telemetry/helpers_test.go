package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// noEnv is a Getenv that sees no OTEL_* variables, so tests do not depend
// on the environment they run in.
func noEnv(string) string { return "" }

// backend is an httptest upstream that remembers the trace headers of
// every request it served, keyed by the X-Test header.
type backend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{seen: map[string]http.Header{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen[r.Header.Get("X-Test")] = r.Header.Clone()
		b.mu.Unlock()
		if r.URL.Path == "/api/fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) headers(id string) http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[id]
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// rig is a gateway with telemetry in front of the given instances of
// service "web", routed at /api.
type rig struct {
	tel   *Telemetry
	spans *tracetest.InMemoryExporter
	gw    *gateway.Gateway
	front *httptest.Server
	logs  *testenv.SyncBuffer
}

type rigOpts struct {
	cfg       config.Telemetry
	instances []discovery.Instance
	access    io.Writer
	noTracing bool
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	if o.cfg.ServiceName == "" {
		o.cfg = config.Default().Telemetry
	}
	logs := &testenv.SyncBuffer{}
	opt := Options{
		Config:       o.cfg,
		Logger:       newTextLogger(logs),
		Getenv:       noEnv,
		AccessLog:    o.access != nil,
		AccessWriter: o.access,
	}
	var spans *tracetest.InMemoryExporter
	if !o.noTracing {
		spans = tracetest.NewInMemoryExporter()
		opt.SpanExporter = spans
	}
	tel, err := New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	r := newRigFrom(t, tel, o.instances)
	r.spans, r.logs = spans, logs
	return r
}

// newRigFrom puts tel's hooks into a gateway for instances and shuts tel
// down at cleanup.
func newRigFrom(t *testing.T, tel *Telemetry, instances []discovery.Instance) *rig {
	t.Helper()
	r := &rig{tel: tel}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tel.Shutdown(ctx)
	})
	var err error
	r.gw, err = gateway.New(gateway.Options{
		Proxy:  config.Default().Proxy,
		Hooks:  tel.Hooks(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.gw.SetHealthy("web", instances, false)
	r.gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
	r.front = httptest.NewServer(r.gw)
	t.Cleanup(r.front.Close)
	return r
}

// do sends one request through the gateway and returns the status.
func (r *rig) do(t *testing.T, method, path, id string, header http.Header) int {
	t.Helper()
	return r.send(t, method, path, id, header, nil)
}

// send is do with a request body (nil: none).
func (r *rig) send(t *testing.T, method, path, id string, header http.Header, body io.Reader) int {
	t.Helper()
	req, err := http.NewRequest(method, r.front.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-Test", id)
	resp, err := r.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// flushed returns every span ended so far.
func (r *rig) flushed(t *testing.T) tracetest.SpanStubs {
	t.Helper()
	if err := r.tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r.spans.GetSpans()
}

// byTrace groups spans by trace id.
func byTrace(spans tracetest.SpanStubs) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		id := s.SpanContext.TraceID().String()
		out[id] = append(out[id], s)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) (string, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := attr(s, k)
		if !ok {
			t.Errorf("span %q: attribute %s missing (have %v)", s.Name, k, s.Attributes)
			continue
		}
		if got != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name, k, got, v)
		}
	}
}

// scrape returns the Prometheus exposition of tel.
func scrape(t *testing.T, tel *Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// wantSeries asserts a series line with all labels exists in exposition.
func wantSeries(t *testing.T, exposition, name string, labels ...string) {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
	}
	t.Errorf("no series %s with %v in:\n%s", name, labels, grepLines(exposition, name))
}

func grepLines(s, prefix string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)
