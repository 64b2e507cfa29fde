package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
)

// okTransport answers every attempt at once, so the benchmark measures the
// gateway and its hooks, not the network.
type okTransport struct{}

func (okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// failingTransport answers every 100th attempt 502, the others 200.
type failingTransport struct{ n atomic.Int64 }

func (t *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, _ := okTransport{}.RoundTrip(r)
	if t.n.Add(1)%100 == 0 {
		resp.StatusCode = http.StatusBadGateway
	}
	return resp, nil
}

func benchTransport(failing bool) http.RoundTripper {
	if failing {
		return &failingTransport{}
	}
	return okTransport{}
}

// dropTransport answers every OTLP export 200 without reading it.
type dropTransport struct{}

func (dropTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkRequestPath compares the cost of the hooks on the request path:
// none, metrics only (no endpoint: the default), tracing at 0%, 1% and
// 100% into a no-op exporter behind the real batch processor, and
// failure-biased sampling at 0% and 1% with no failures happening and with
// one request in 100 failing. The ",parent" rows send a client's unsampled
// traceparent and tracestate, which the gateway continues. The ",records"
// rows use the direct exporter's record path (no SDK spans), exporting to
// an HTTP client that drops what it is sent (encoding included).
//
//	go test -run '^$' -bench RequestPath -benchmem ./telemetry/
func BenchmarkRequestPath(b *testing.B) {
	for _, mode := range []struct {
		name    string
		tracing bool
		ratio   float64
	}{
		{"hooks=nil", false, 0},
		{"metrics", false, 0},
		{"tracing=0%", true, 0},
		{"tracing=0%,parent", true, 0},
		{"tracing=1%", true, 0.01},
		{"tracing=100%", true, 1},
		{"tracing=100%,records", true, 1},
		{"failures+0%", true, 0},
		{"failures+1%", true, 0.01},
		{"failures+1%,parent", true, 0.01},
		// One request in 100 answered 502, every one kept (no cap).
		{"failures+1%,1%-502", true, 0.01},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var hooks gateway.Hooks
			if mode.name != "hooks=nil" {
				cfg := config.Default().Telemetry
				cfg.Sampler, cfg.SamplerArg = "parentbased_traceidratio", mode.ratio
				if strings.HasPrefix(mode.name, "failures+") {
					cfg.Sampler = config.FailuresSamplerPrefix + cfg.Sampler
					cfg.FailureTracesPerSecond = 1e12
				}
				opt := Options{Config: cfg, Getenv: noEnv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				switch {
				case strings.HasSuffix(mode.name, ",records"):
					opt.Config.Endpoint, opt.Config.Protocol = "http://127.0.0.1:4318", ProtocolHTTP
					opt.ExportClient = &http.Client{Transport: dropTransport{}}
				case mode.tracing:
					opt.SpanExporter = tracetest.NewNoopExporter()
				}
				tel, err := New(context.Background(), opt)
				if err != nil {
					b.Fatal(err)
				}
				defer tel.Shutdown(context.Background())
				hooks = tel.Hooks()
			}
			gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: hooks, Transport: benchTransport(strings.HasSuffix(mode.name, "-502")),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			gw.SetHealthy("web", []discovery.Instance{{ID: "a", Address: "10.0.0.1:80"}, {ID: "b", Address: "10.0.0.2:80"}}, false)
			gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
			req := httptest.NewRequest("GET", "http://gw.example/api/items/1", nil)
			if strings.HasSuffix(mode.name, ",parent") {
				req.Header["Traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
				req.Header["Tracestate"] = []string{"client=1"}
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				gw.ServeHTTP(w, req)
			}
		})
	}
}
