package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/switchyard-gw/switchyard/discovery"
)

// The proxy benchmarks serve one request through the handler in-process
// (httptest.ResponseRecorder in front, a real keep-alive backend behind), so
// allocs/op counts the proxy path plus net/http's transport. Compare
// BenchmarkProxy with BenchmarkBareReverseProxy, a plain httputil proxy over
// the same transport: the difference is what the gateway itself adds.

func benchBackend(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	b.Cleanup(s.Close)
	return s
}

func BenchmarkProxy(b *testing.B) {
	be := benchBackend(b)
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		b.Fatal(err)
	}
	g.SetRoutes(defaultRoute())
	g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: addr(be)}}, false)
	runProxyBench(b, g)
}

func BenchmarkBareReverseProxy(b *testing.B) {
	be := benchBackend(b)
	u, _ := url.Parse(be.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport: NewTransport(testProxyConfig()),
	}
	runProxyBench(b, rp)
}

func runProxyBench(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "http://example.com/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
