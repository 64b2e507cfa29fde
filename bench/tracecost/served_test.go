package tracecost

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/h1"
	"github.com/switchyard-gw/switchyard/internal/rawhttp"
	"github.com/switchyard-gw/switchyard/telemetry"
)

// BenchmarkServedTracing is one request over real sockets (a keep-alive
// client connection, the fast server, the gateway with its telemetry hooks,
// a keep-alive connection to a raw backend) at each sampler setting of the
// tracing load benchmark (make bench-tracing), so that the syscalls and
// the server are in the denominator. Sampled spans go through the real
// pipeline (batch processor, direct OTLP http/protobuf exporter) into
// discardTransport. Client and backend allocate nothing per request.
//
//	go test -run '^$' -bench ServedTracing -benchmem ./bench/tracecost/
//	GOMAXPROCS=1 bench/tracecost/instructions.sh 'ServedTracing/' 2000 20000
//
// Rows:
//
//	disabled          no hooks (telemetry.enabled: false)
//	off               metrics only, no trace endpoint (the default)
//	0%, 1%, 100%      traceidratio
//	failures+1%       failures+traceidratio at 1%, no request failing
//	failures+1%,502   the same with the backend answering every 100th
//	                  request 502, which the client gets and for which
//	                  the trace is kept after the fact
//
// user-µs/op and sys-µs/op are the process's CPU (every goroutine, GC
// and export included) from getrusage: instruction counts see only user
// space, sys-µs/op says how much of the whole that leaves out. gc/kop is
// garbage collections per 1000 requests: what a request allocates and
// what the process keeps alive (spans waiting for export) both show there.
func BenchmarkServedTracing(b *testing.B) {
	for _, row := range []struct {
		name    string
		sampler string
		ratio   float64
	}{
		{"disabled", "", 0},
		{"off", "", 0},
		{"0%", "traceidratio", 0},
		{"1%", "traceidratio", 0.01},
		{"failures+1%", "failures+traceidratio", 0.01},
		{"failures+1%,502", "failures+traceidratio", 0.01},
		{"100%", "traceidratio", 1},
	} {
		b.Run(row.name, func(b *testing.B) {
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			every := 0
			if strings.HasSuffix(row.name, ",502") {
				every = 100
			}
			be := rawBackend(b, every)
			var hooks gateway.Hooks
			var tel *telemetry.Telemetry
			if row.name != "disabled" {
				cfg := config.Default().Telemetry
				opt := telemetry.Options{Config: cfg, Getenv: func(string) string { return "" }, Logger: quiet}
				if row.sampler != "" {
					opt.Config.Sampler, opt.Config.SamplerArg = row.sampler, row.ratio
					opt.Config.Endpoint, opt.Config.Protocol, opt.Config.SpanExporter = "http://127.0.0.1:4318", telemetry.ProtocolHTTP, telemetry.SpanExporterDirect
					opt.ExportClient = &http.Client{Transport: discardTransport{}}
				}
				var err error
				if tel, err = telemetry.New(context.Background(), opt); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = tel.Shutdown(ctx)
				})
				hooks = tel.Hooks()
			}
			gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: hooks, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			gw.SetHealthy("web", []discovery.Instance{{ID: "web-1", Address: be}, {ID: "web-2", Address: be}}, false)
			gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &h1.Server{Handler: gw, Fallback: &http.Server{Handler: gw}, Logger: quiet}
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(ln) }()
			b.Cleanup(func() { srv.Close(); <-done })
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /api/items/1 HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: wrk/4.2.0\r\nAccept: */*\r\n\r\n")
			buf := make([]byte, 4096)
			b.ReportAllocs()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			gc0 := ms.NumGC
			u0, s0 := rusage(b)
			for b.Loop() {
				answer := rawhttp.Exchange(b, c, req, buf)
				if st := string(answer[:12]); st != "HTTP/1.1 200" && (every == 0 || st != "HTTP/1.1 502") {
					b.Fatalf("answer %q", answer)
				}
			}
			if tel != nil {
				// Export what is pending inside the measurement.
				if err := tel.ForceFlush(context.Background()); err != nil {
					b.Fatal(err)
				}
				if n := tel.DroppedSpans(); n > 0 {
					b.Fatalf("dropped %d spans", n)
				}
			}
			u1, s1 := rusage(b)
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.NumGC-gc0)*1000/float64(b.N), "gc/kop")
			b.ReportMetric(float64((u1-u0).Nanoseconds())/1e3/float64(b.N), "user-µs/op")
			b.ReportMetric(float64((s1-s0).Nanoseconds())/1e3/float64(b.N), "sys-µs/op")
		})
	}
}

// rusage returns the process's user and system CPU time so far.
func rusage(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// rawBackend answers every request on every connection 200 "ok\r\n", or
// with failEvery > 0 every failEvery-th request (over all connections)
// 502 with the same body, and returns its address.
func rawBackend(b *testing.B, failEvery int) string {
	ok := []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nok\r\n")
	bad := []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nok\r\n")
	var served atomic.Int64
	return rawhttp.Backend(b, func() []byte {
		if failEvery > 0 && served.Add(1)%int64(failEvery) == 0 {
			return bad
		}
		return ok
	})
}
