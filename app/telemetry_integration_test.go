package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// traceBackend is an upstream that records the traceparent of every
// request by its X-Test header.
type traceBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]string
}

func newTraceBackend(t *testing.T) *traceBackend {
	b := &traceBackend{seen: map[string]string{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Test"); id != "" {
			b.mu.Lock()
			b.seen[id] = r.Header.Get("Traceparent")
			b.mu.Unlock()
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *traceBackend) traceparent(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[id]
}

func (b *traceBackend) addr() string { return b.srv.Listener.Addr().String() }

// telemetryRig is a running gateway for service "web" at /api over a live
// instance and a doomed one, which passes its first probe and then stops
// accepting connections while it is still in the healthy set (the next
// probe is an hour away): every request that picks it first is retried on
// the live one.
type telemetryRig struct {
	app    *App
	live   *traceBackend
	doomed string // address that now refuses connections
	stop   func() // stops the gateway (flushing telemetry) and waits
}

func startTelemetryRig(t *testing.T, tel config.Telemetry) *telemetryRig {
	t.Helper()
	// The gateway reads OTEL_* variables; make sure the machine's do not
	// redirect this test.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	live := newTraceBackend(t)
	doomed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(doomed.Close)

	c := config.Default()
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Health.Interval, c.Health.Jitter = time.Hour, 0
	c.ShutdownTimeout = 10 * time.Second
	c.Services = []config.Service{{Name: "web", Instances: []config.Instance{
		{ID: "live", Address: live.addr()},
		{ID: "doomed", Address: doomed.Listener.Addr().String()},
	}}}
	c.Routes = []config.Route{{PathPrefix: "/api", Service: "web"}}
	c.Telemetry = tel
	a, stop := runQuiet(t, &c)
	testenv.WaitFor(t, 10*time.Second, "both instances in rotation", func() bool {
		return a.Checker().Ready() && a.Gateway().Healthy("web") == 2
	})
	addr := doomed.Listener.Addr().String()
	doomed.Close()
	return &telemetryRig{app: a, live: live, doomed: addr, stop: stop}
}

func (r *telemetryRig) get(t *testing.T, path, id string, header http.Header) {
	t.Helper()
	if code := getTagged(t, r.app, path, id, header); code != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200 (retried on the live instance)", path, code)
	}
}

func TestTracesReachARealJaeger(t *testing.T) {
	j := testenv.StartJaeger(t)
	for i, proto := range []struct{ name, endpoint, exporter string }{
		{"grpc", j.OTLPGRPC, "direct"},
		{"http/protobuf", j.OTLPHTTP, "direct"},
		{"grpc", j.OTLPGRPC, "sdk"},
		{"http/protobuf", j.OTLPHTTP, "sdk"},
	} {
		t.Run(proto.exporter+" "+proto.name, func(t *testing.T) {
			service := "switchyard-" + proto.exporter + "-" + strings.ReplaceAll(proto.name, "/", "-")
			tel := config.Default().Telemetry
			tel.Endpoint, tel.Protocol, tel.ServiceName, tel.SpanExporter = proto.endpoint, proto.name, service, proto.exporter
			r := startTelemetryRig(t, tel)

			const requests = 4
			for i := range requests {
				r.get(t, "/api/items/"+strconv.Itoa(i), strconv.Itoa(i), nil)
			}
			// A trace id of its own per subtest: both share one Jaeger.
			clientTrace := fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02d", i)
			const clientSpan = "00f067aa0ba902b7"
			r.get(t, "/api/continued", "continued", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}})
			r.stop() // shutdown flushes the batch processor

			liveHost, livePort, _ := net.SplitHostPort(r.live.addr())
			retried := 0
			for _, id := range []string{"0", "1", "2", "3", "continued"} {
				tp := strings.Split(r.live.traceparent(id), "-")
				if len(tp) != 4 {
					t.Fatalf("request %s: backend saw traceparent %q", id, r.live.traceparent(id))
				}
				traceID, parentID := tp[1], tp[2]
				if id == "continued" && traceID != clientTrace {
					t.Errorf("incoming trace %s not continued: backend saw %s", clientTrace, traceID)
				}
				tr := waitForTrace(t, j, traceID)
				if p := tr.Processes[tr.Spans[0].ProcessID]; p.ServiceName != service {
					t.Errorf("trace %s: service %q, want %q", traceID, p.ServiceName, service)
				}

				var server *testenv.JaegerSpan
				var clients []testenv.JaegerSpan
				for i, s := range tr.Spans {
					switch kind, _ := s.Tag("span.kind"); kind {
					case "server":
						if server != nil {
							t.Fatalf("trace %s: two server spans", traceID)
						}
						server = &tr.Spans[i]
					case "client":
						clients = append(clients, s)
					}
				}
				if server == nil {
					t.Fatalf("trace %s: no server span in %+v", traceID, tr.Spans)
				}
				if server.OperationName != "GET /api" {
					t.Errorf("server span %q, want \"GET /api\"", server.OperationName)
				}
				wantTags(t, *server, map[string]string{"http.route": "/api", "http.request.method": "GET", "http.response.status_code": "200", "switchyard.service": "web"})
				if id == "continued" && server.ParentID() != clientSpan {
					t.Errorf("continued trace: server span parent %q, want the client's %s", server.ParentID(), clientSpan)
				}

				// Client spans in attempt order; the last one served.
				ordered := make([]testenv.JaegerSpan, len(clients))
				for _, c := range clients {
					n, _ := c.Tag("switchyard.attempt")
					k, err := strconv.Atoi(n)
					if err != nil || k >= len(clients) {
						t.Fatalf("trace %s: client span with switchyard.attempt %q among %d", traceID, n, len(clients))
					}
					ordered[k] = c
					if c.ParentID() != server.SpanID {
						t.Errorf("trace %s: client span %s is not a child of the server span", traceID, c.SpanID)
					}
					wantTags(t, c, map[string]string{"switchyard.service": "web", "switchyard.lb.policy": "round_robin"})
				}
				if len(ordered) == 0 || len(ordered) > 2 {
					t.Fatalf("trace %s: %d client spans, want 1 or 2", traceID, len(ordered))
				}
				last := ordered[len(ordered)-1]
				wantTags(t, last, map[string]string{
					"switchyard.instance.id": "live", "server.address": liveHost, "server.port": livePort,
					"http.response.status_code": "200",
				})
				if h, _ := last.Tag("switchyard.healthy_instances"); h != "2" && h != "1" {
					t.Errorf("switchyard.healthy_instances = %q", h)
				}
				if last.SpanID != parentID {
					t.Errorf("trace %s: backend's traceparent parent %s, want the serving attempt's span %s", traceID, parentID, last.SpanID)
				}
				if len(ordered) == 2 {
					retried++
					first := ordered[0]
					doomedHost, doomedPort, _ := net.SplitHostPort(r.doomed)
					wantTags(t, first, map[string]string{
						"switchyard.instance.id": "doomed", "server.address": doomedHost, "server.port": doomedPort,
						"otel.status_code": "ERROR", "error": "true", "error.type": "dial_error", "switchyard.healthy_instances": "2",
					})
					if ev := first.Events(); len(ev) == 0 || ev[0] != "exception" {
						t.Errorf("failed attempt: events %v, want the recorded error", ev)
					}
					wantTags(t, last, map[string]string{"switchyard.attempt": "1", "http.request.resend_count": "1"})
				}
			}
			if retried == 0 {
				t.Errorf("no request was retried after the doomed instance refused it")
			}
		})
	}
}

// waitForTrace polls Jaeger until trace id is stored with a server span and
// a client span whose attempt is the one that served.
func waitForTrace(t *testing.T, j *testenv.Jaeger, id string) testenv.JaegerTrace {
	t.Helper()
	var tr testenv.JaegerTrace
	var err error
	testenv.WaitFor(t, 30*time.Second, "trace "+id+" in jaeger", func() bool {
		tr, err = j.Trace(id)
		if err != nil {
			return false
		}
		servers, ok := 0, false
		for _, s := range tr.Spans {
			if k, _ := s.Tag("span.kind"); k == "server" {
				servers++
			}
			if iid, _ := s.Tag("switchyard.instance.id"); iid == "live" {
				ok = true
			}
		}
		return servers == 1 && ok
	})
	return tr
}

func wantTags(t *testing.T, s testenv.JaegerSpan, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := s.Tag(k)
		if !ok {
			t.Errorf("span %s %q: tag %s missing", s.SpanID, s.OperationName, k)
		} else if got != v {
			t.Errorf("span %s %q: %s = %q, want %q", s.SpanID, s.OperationName, k, got, v)
		}
	}
}

func TestMetricsEndpointShowsTheRoutingStory(t *testing.T) {
	tel := config.Default().Telemetry // no endpoint: metrics only
	r := startTelemetryRig(t, tel)
	for i := range 4 {
		r.get(t, "/api/users/"+strconv.Itoa(1000+i), strconv.Itoa(i), nil)
	}
	resp, err := http.Get("http://" + r.app.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []struct {
		name   string
		labels []string
	}{
		{"switchyard_requests_total", []string{`method="GET"`, `route="/api"`, `service="web"`, `status_class="2xx"`, "} 4"}},
		{"switchyard_request_duration_seconds_count", []string{`route="/api"`, `service="web"`, "} 4"}},
		{"switchyard_upstream_attempts_total", []string{`instance="live"`, `outcome="ok"`, `service="web"`, "} 4"}},
		{"switchyard_upstream_attempts_total", []string{`instance="doomed"`, `outcome="dial_error"`, `service="web"`}},
		{"switchyard_upstream_retries_total", []string{`service="web"`}},
		{"switchyard_upstream_healthy_instances", []string{`service="web"`}},
		{"switchyard_instance_routable", []string{`instance="live"`, `service="web"`, "} 1"}},
		{"switchyard_instance_routable", []string{`instance="doomed"`, `service="web"`}},
		{"switchyard_health_probe_duration_seconds_count", []string{`instance="live"`, `result="ok"`, `service="web"`}},
		{"switchyard_discovery_last_success_seconds", []string{`provider="static"`}},
		{"switchyard_discovery_updates_total", []string{`provider="static"`, "} 1"}},
		{"switchyard_discovery_errors_total", []string{`provider="static"`, "} 0"}},
		{"target_info", []string{`service_name="switchyard"`}},
	} {
		if !hasSeries(m, want.name, want.labels) {
			t.Errorf("/metrics lacks %s%v; it has:\n%s", want.name, want.labels, grepPrefix(m, want.name))
		}
	}
	if strings.Contains(m, "users/100") {
		t.Error("a raw path leaked into a metric label")
	}
}

func hasSeries(exposition, name string, labels []string) bool {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if all {
			return true
		}
	}
	return false
}

func grepPrefix(s, prefix string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("(no %s lines)", prefix)
	}
	return strings.Join(out, "\n")
}
