package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/h1"
	"github.com/switchyard-gw/switchyard/internal/rawhttp"
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

// benchGateway is a gateway routing everything to one benchBackend.
func benchGateway(b *testing.B) *Gateway {
	be := benchBackend(b)
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		b.Fatal(err)
	}
	g.SetRoutes(defaultRoute())
	g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: addr(be)}}, false)
	return g
}

func BenchmarkProxy(b *testing.B) { runProxyBench(b, benchGateway(b)) }

func BenchmarkBareReverseProxy(b *testing.B) {
	be := benchBackend(b)
	u, _ := url.Parse(be.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport: newFallback(testProxyConfig(), newDialer(testProxyConfig()).DialContext),
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

// BenchmarkServed sends requests over one keep-alive connection through a
// listening server in front of the gateway: the fast path (Server) and, for
// reference, net/http's server alone. Client, gateway and backend share the
// process, so allocs/op counts all three; the difference between the two
// is the server side.
func BenchmarkServed(b *testing.B) {
	g := benchGateway(b)
	b.Run("server=fast", func(b *testing.B) {
		ln := benchListen(b)
		s := &h1.Server{Handler: g, Fallback: &http.Server{Handler: g}}
		go s.Serve(ln)
		defer s.Close()
		runServedBench(b, ln.Addr().String())
	})
	b.Run("server=net/http", func(b *testing.B) {
		ln := benchListen(b)
		s := &http.Server{Handler: g}
		go s.Serve(ln)
		defer s.Close()
		runServedBench(b, ln.Addr().String())
	})
}

func benchListen(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

func runServedBench(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkServedMinimal is BenchmarkServed's fast path with a client and a
// backend that allocate nothing (raw bytes on keep-alive connections, as
// the load benchmark's minimal backends), so that allocs/op and
// instructions per request are the gateway's and the server's alone.
func BenchmarkServedMinimal(b *testing.B) {
	ok := []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nok\r\n")
	be := rawhttp.Backend(b, func() []byte { return ok })
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		b.Fatal(err)
	}
	g.SetRoutes(defaultRoute())
	g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: be}}, false)
	ln := benchListen(b)
	s := &h1.Server{Handler: g, Fallback: &http.Server{Handler: g}}
	go s.Serve(ln)
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if answer := rawhttp.Exchange(b, c, req, buf); string(answer[:12]) != "HTTP/1.1 200" {
			b.Fatalf("answer %q", answer)
		}
	}
}
