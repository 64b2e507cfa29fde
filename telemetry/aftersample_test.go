package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
)

// ejections records passive-health ejections and accepts every one.
type ejections struct {
	mu  sync.Mutex
	ids []string
}

func (e *ejections) Eject(_, id, _ string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, id)
	return true
}

// failuresRig is a gateway over one backend (/api/fail answers 503, a
// passive-health failure) with a failures+traceidratio sampler at ratio 0, passive health
// ejecting after one failure, and the given cap.
func failuresRig(t *testing.T, rate float64, panic bool) *rig {
	t.Helper()
	cfg := config.Default().Telemetry
	cfg.Sampler, cfg.SamplerArg, cfg.FailureTracesPerSecond = "failures+traceidratio", 0, rate
	spans := tracetest.NewInMemoryExporter()
	tel, err := New(context.Background(), Options{Config: cfg, Getenv: noEnv, SpanExporter: spans,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(be.Close)
	gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: tel.Hooks(), EjectAfter: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	gw.SetEjector(&ejections{})
	gw.SetHealthy("web", []discovery.Instance{{ID: "a", Address: be.Listener.Addr().String()}}, panic)
	gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	return &rig{tel: tel, spans: spans, gw: gw, front: front}
}

func TestFailureBiasedSampling(t *testing.T) {
	unsampledParent := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
	sampledParent := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	for _, c := range []struct {
		name   string
		panic  bool
		path   string
		header http.Header
		want   string // kept_after, "" for no spans
	}{
		{"a boring request leaves no span", false, "/api/ok", nil, ""},
		{"a 5xx that ejects its instance is kept for both", false, "/api/fail", nil, `["ejection","5xx"]`},
		{"a pick under the panic threshold is kept", true, "/api/ok", nil, `["panic"]`},
		{"a failure in a client's unsampled trace is not kept", false, "/api/fail", unsampledParent, ""},
		{"a failure under a client's sampled parent is kept", false, "/api/fail", sampledParent, `["ejection","5xx"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := failuresRig(t, 100, c.panic)
			r.do(t, "GET", c.path, "x", c.header)
			spans := r.flushed(t)
			if c.want == "" {
				if len(spans) != 0 {
					t.Fatalf("%d spans exported, want none", len(spans))
				}
				return
			}
			if len(spans) != 2 {
				t.Fatalf("%d spans exported, want a server and a client span", len(spans))
			}
			for _, s := range spans {
				wantAttrs(t, s, map[string]string{string(AttrKeptAfter): c.want})
				if s.EndTime.Before(s.StartTime) || s.StartTime.IsZero() {
					t.Errorf("span %q: start %v end %v", s.Name, s.StartTime, s.EndTime)
				}
				if ts := s.SpanContext.TraceState().Get("ot"); ts != "" {
					t.Errorf("span %q carries a sampling threshold %q", s.Name, ts)
				}
			}
			if c.header != nil && spans[1].Parent.SpanID().String() != "b7ad6b7169203331" {
				t.Errorf("server span's parent %s, want the client's", spans[1].Parent.SpanID())
			}
		})
	}
}

func TestKeptTracesAreCappedAndCounted(t *testing.T) {
	// A burst of one trace, refilled far slower than the test runs.
	r := failuresRig(t, 0.01, false)
	for range 3 {
		r.do(t, "GET", "/api/fail", "x", nil)
	}
	if spans := r.flushed(t); len(spans) != 2 {
		t.Fatalf("%d spans exported, want one request's two", len(spans))
	}
	m := scrape(t, r.tel)
	wantSeries(t, m, "switchyard_telemetry_failure_traces_total", `reason="ejection"`, `result="kept"`, "} 1")
	// Only the first request ejected (after one failure); the others were 5xx.
	wantSeries(t, m, "switchyard_telemetry_failure_traces_total", `reason="5xx"`, `result="capped"`, "} 2")
}

// A watched request's state is one allocation of the 352-byte size class
// (the next is 384).
func TestWatchedRequestFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(watchedReq{}); n > 352 {
		t.Errorf("watchedReq is %d bytes, want at most 352", n)
	}
}
