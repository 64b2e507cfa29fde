package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// checkReleased checks that a released state keeps nothing of its
// request.
func checkReleased(t *testing.T, st *reqState) {
	s := *st
	w := s.w
	s.w, s.ids = nil, idRand{} // the id generator stays with the state
	if !reflect.ValueOf(s).IsZero() {
		t.Errorf("released state keeps %+v", s)
	}
	if w != nil && (len(w.tries) != 0 || &w.tries[:1][0] != &w.triesA[0] || !reflect.ValueOf(w.triesA).IsZero() || w.out != nil) {
		t.Errorf("released watched state keeps %+v", *w)
	}
}

// An unsampled request's state is released for reuse once the request
// has ended, keeping nothing of it; a later request that reuses it sends
// its own traceparent upstream, and the incoming tracestate of its own.
func TestReleasedStateKeepsNothingAndIsReused(t *testing.T) {
	for _, sampler := range []string{"traceidratio", "failures+traceidratio"} {
		t.Run(sampler, func(t *testing.T) {
			cfg := config.Default().Telemetry
			cfg.Sampler, cfg.SamplerArg = sampler, 0
			tel, err := New(context.Background(), Options{Config: cfg, Getenv: noEnv, SpanExporter: tracetest.NewInMemoryExporter(),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tel.Shutdown(context.Background()) })
			b := newBackend(t)
			hooks := tel.Hooks()
			released := 0
			hooks.Release = func(end gateway.RequestEnd) {
				// The state is back in the pool: no other test runs in
				// parallel to take it before it is checked.
				release(end)
				checkReleased(t, end.(*reqState))
				released++
			}
			gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: hooks,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			gw.SetHealthy("web", []discovery.Instance{{ID: "web-1", Address: b.addr()}}, false)
			gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
			seen := map[string]bool{}
			const n = 8
			for i := range n {
				id := strconv.Itoa(i)
				req := httptest.NewRequest("GET", "/api/x", nil)
				req.Header.Set("X-Test", id)
				if i%2 == 0 {
					// A trusted, sampled parent: its tracestate goes on.
					req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c8031"+strconv.Itoa(10+i)+"-b7ad6b7169203331-01")
					req.Header.Set("Tracestate", "k="+id)
				}
				rec := httptest.NewRecorder()
				gw.ServeHTTP(rec, req)
				if rec.Code != 200 {
					t.Fatalf("status %d", rec.Code)
				}
				h := b.headers(id)
				tp := h.Get("Traceparent")
				if seen[tp] {
					t.Errorf("request %d sent traceparent %q again", i, tp)
				}
				seen[tp] = true
				parseTraceparent(t, tp)
				want := ""
				if i%2 == 0 {
					want = "k=" + id
				}
				if got := h.Get("Tracestate"); got != want {
					t.Errorf("request %d sent tracestate %q, want %q", i, got, want)
				}
			}
			if released != n {
				t.Errorf("%d of %d states released", released, n)
			}
		})
	}
}

// Concurrent unsampled requests through the gateway's own transport, whose
// states are released and reused: each sends upstream a traceparent of its
// own, and its access log line names that trace, not another request's.
func TestReusedStatesDoNotMixConcurrentRequests(t *testing.T) {
	b := newBackend(t)
	var out testenv.SyncBuffer
	o := rigOpts{access: &out, instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}}
	o.cfg = config.Default().Telemetry
	o.cfg.Sampler, o.cfg.SamplerArg = "failures+traceidratio", 0
	r := newRig(t, o)
	const clients, each = 4, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				id := strconv.Itoa(c*each + i)
				req, _ := http.NewRequest("GET", r.front.URL+"/api/x/"+id, nil)
				req.Header.Set("X-Test", id)
				resp, err := r.front.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	traces := map[string]string{} // path -> trace id in the access log
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct {
			TraceID string `json:"trace_id"`
			Path    string `json:"path"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		traces[e.Path] = e.TraceID
	}
	seen := map[string]bool{}
	for n := range clients * each {
		id := strconv.Itoa(n)
		tp := b.headers(id).Get("Traceparent")
		sc := parseTraceparent(t, tp)
		if seen[tp] {
			t.Errorf("request %s sent traceparent %q, as another did", id, tp)
		}
		seen[tp] = true
		if got := traces["/api/x/"+id]; got != sc.TraceID().String() {
			t.Errorf("request %s: access log trace %q, sent upstream %s", id, got, sc.TraceID())
		}
	}
}
