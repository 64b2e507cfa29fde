package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

// failureRig is a gateway with a failures+traceidratio sampler at ratio 0:
//   - /ok (service solo): one live instance; /ok/fail answers 502 and
//     /ok/slow answers after slowBackend;
//   - /api (service web): the live instance and one that refuses
//     connections, so every other request is retried after a dial error;
//   - /gone (service gone): its only instance never becomes healthy: 503.
type failureRig struct {
	app  *App
	mu   sync.Mutex
	seen map[string]string // X-Test -> traceparent the backend received
	stop func()
}

// slowBackend is how long /ok/slow takes; slowThreshold, below it, makes
// it a slow request.
const (
	slowBackend   = 800 * time.Millisecond
	slowThreshold = 500 * time.Millisecond
)

func startFailureRig(t *testing.T, j *testenv.Jaeger, service string) *failureRig {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	r := &failureRig{seen: map[string]string{}}
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if id := req.Header.Get("X-Test"); id != "" {
			r.mu.Lock()
			r.seen[id] = req.Header.Get("Traceparent")
			r.mu.Unlock()
		}
		switch {
		case strings.HasSuffix(req.URL.Path, "/fail"):
			w.WriteHeader(http.StatusBadGateway)
		case strings.HasSuffix(req.URL.Path, "/slow"):
			time.Sleep(slowBackend) // the behaviour under test: a slow answer
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(live.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	deadAddr := closed.Listener.Addr().String()
	closed.Close()
	// doomed passes its first probe, then refuses connections while it
	// is still in web's healthy set (the next probe is an hour away).
	doomed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(doomed.Close)

	c := config.Default()
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Health.Interval, c.Health.Jitter = time.Hour, 0
	c.ShutdownTimeout = 10 * time.Second
	c.Services = []config.Service{
		{Name: "solo", Instances: []config.Instance{{ID: "solo-live", Address: live.Listener.Addr().String()}}},
		{Name: "web", Instances: []config.Instance{{ID: "live", Address: live.Listener.Addr().String()}, {ID: "doomed", Address: doomed.Listener.Addr().String()}}},
		{Name: "gone", Instances: []config.Instance{{ID: "dead", Address: deadAddr}}},
	}
	c.Routes = []config.Route{{PathPrefix: "/ok", Service: "solo"}, {PathPrefix: "/api", Service: "web"}, {PathPrefix: "/gone", Service: "gone"}}
	c.Telemetry.Endpoint, c.Telemetry.ServiceName = j.OTLPGRPC, service
	c.Telemetry.Sampler, c.Telemetry.SamplerArg = "failures+traceidratio", 0
	c.Telemetry.SlowThreshold = slowThreshold
	var a *App
	a, r.stop = runQuiet(t, &c)
	r.app = a
	testenv.WaitFor(t, 10*time.Second, "web and solo in rotation", func() bool {
		return a.Gateway().Healthy("web") == 2 && a.Gateway().Healthy("solo") == 1
	})
	doomed.Close()
	return r
}

// runQuiet validates c, runs an App on it with its logs dropped, and
// returns it with a stop func (also registered as cleanup; safe to call
// more than once) that ends Run and reports its error.
func runQuiet(t *testing.T, c *config.Config) (*App, func()) {
	t.Helper()
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// get sends GET path tagged id with header and returns the status.
func (r *failureRig) get(t *testing.T, path, id string, header http.Header) int {
	t.Helper()
	return getTagged(t, r.app, path, id, header)
}

// getTagged sends GET path through a's proxy listener with header and
// X-Test: id, and returns the status; the body is read and dropped.
func getTagged(t *testing.T, a *App, path, id string, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+a.ProxyAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-Test", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// traceparent returns the parts of the traceparent the backend received
// for request id: trace id, parent span id, flags.
func (r *failureRig) traceparent(t *testing.T, id string) (string, string, string) {
	t.Helper()
	r.mu.Lock()
	tp := r.seen[id]
	r.mu.Unlock()
	p := strings.Split(tp, "-")
	if len(p) != 4 {
		t.Fatalf("request %s: backend saw traceparent %q", id, tp)
	}
	return p[1], p[2], p[3]
}

// At ratio 0 nothing is sampled when it starts; what ends interesting is
// found in Jaeger with its client spans, and nothing else is.
func TestFailuresAreKeptAfterTheFactInARealJaeger(t *testing.T) {
	j := testenv.StartJaeger(t)
	const service = "switchyard-failures"
	r := startFailureRig(t, j, service)

	// A loaded machine may make a boring request slow for real; such a
	// request may be kept, and is allowed for below.
	slowBoring := 0
	for i := range 200 {
		start := time.Now()
		if code := r.get(t, "/ok/"+strconv.Itoa(i), "boring", nil); code != http.StatusOK {
			t.Fatalf("boring request %d: %d", i, code)
		}
		if time.Since(start) > slowThreshold {
			slowBoring++
		}
	}
	if code := r.get(t, "/ok/fail", "502", nil); code != http.StatusBadGateway {
		t.Fatalf("/ok/fail: %d, want 502", code)
	}
	if code := r.get(t, "/ok/slow", "slow", nil); code != http.StatusOK {
		t.Fatalf("/ok/slow: %d", code)
	}
	// A client's unsampled trace is never turned into a root of ours.
	r.get(t, "/ok/fail", "unsampled-parent", http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}})
	// Round robin sends every other request to doomed first.
	retried := ""
	for i := 0; i < 10 && retried == ""; i++ {
		id := "api-" + strconv.Itoa(i)
		if code := r.get(t, "/api/x", id, nil); code != http.StatusOK {
			t.Fatalf("/api/x: %d, want 200 after a retry", code)
		}
		if _, _, flags := r.traceparent(t, id); flags == "01" {
			retried = id // sampling switched on for the second attempt
		}
	}
	if retried == "" {
		t.Fatal("no request was retried, or the retry did not switch sampling on")
	}
	// No healthy instance: the backend sees nothing, so the trace is the
	// client's (sampled) own.
	const gone, goneParent = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	if code := r.get(t, "/gone", "gone", http.Header{"Traceparent": {"00-" + gone + "-" + goneParent + "-01"}}); code != http.StatusServiceUnavailable {
		t.Fatalf("/gone: %d, want 503", code)
	}
	metrics := fetchMetrics(t, r.app.AdminAddr())
	r.stop() // flushes

	failID, failParent, failFlags := r.traceparent(t, "502")
	if failFlags != "00" {
		t.Errorf("502 request went upstream with flags %s, want 00 (not sampled)", failFlags)
	}
	tr := waitForSpans(t, j, failID, 2)
	server, clients := splitSpans(t, tr)
	if server.SpanID != failParent {
		t.Errorf("502: server span %s, but the backend was told parent %s", server.SpanID, failParent)
	}
	wantTags(t, server, map[string]string{"http.response.status_code": "502", "switchyard.sampling.kept_after": `["5xx"]`})
	wantTags(t, clients[0], map[string]string{"switchyard.instance.id": "solo-live", "http.response.status_code": "502"})

	slowID, _, _ := r.traceparent(t, "slow")
	tr = waitForSpans(t, j, slowID, 2)
	server, clients = splitSpans(t, tr)
	wantTags(t, server, map[string]string{"switchyard.sampling.kept_after": `["slow"]`})
	if d := time.Duration(clients[0].Duration) * time.Microsecond; d < slowBackend {
		t.Errorf("slow attempt's client span lasts %v, want at least %v (its real times)", d, slowBackend)
	}

	retryID, retryParent, _ := r.traceparent(t, retried)
	tr = waitForSpans(t, j, retryID, 3)
	server, clients = splitSpans(t, tr)
	wantTags(t, server, map[string]string{"http.response.status_code": "200", "switchyard.attempts": "2"})
	wantTags(t, clients[0], map[string]string{"switchyard.instance.id": "doomed", "error.type": "dial_error", "switchyard.attempt": "0"})
	wantTags(t, clients[1], map[string]string{"switchyard.instance.id": "live", "switchyard.attempt": "1"})
	if clients[1].SpanID != retryParent {
		t.Errorf("retried: the second attempt's span is %s, but the backend was told parent %s", clients[1].SpanID, retryParent)
	}
	if clients[0].StartTime > clients[1].StartTime || clients[1].StartTime+clients[1].Duration > server.StartTime+server.Duration {
		t.Errorf("retried: attempt times out of order: %+v %+v in %+v", clients[0], clients[1], server)
	}

	tr = waitForSpans(t, j, gone, 1)
	server, _ = splitSpans(t, tr)
	wantTags(t, server, map[string]string{"http.response.status_code": "503", "switchyard.sampling.kept_after": `["no_healthy_instance","5xx"]`})
	if server.ParentID() != goneParent {
		t.Errorf("503: server span parent %q, want the client's %s", server.ParentID(), goneParent)
	}

	// Exactly those four: no boring request, no unsampled client trace.
	ts, err := j.Traces(service)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) < 4 || len(ts) > 4+slowBoring {
		var ids []string
		for _, x := range ts {
			ids = append(ids, x.TraceID)
		}
		t.Errorf("jaeger holds %d traces %v, want the 4 interesting ones (and %d boring ones that took over %v)", len(ts), ids, slowBoring, slowThreshold)
	}
	for _, want := range [][]string{
		{`reason="5xx"`, `result="kept"`, "} 1"},
		{`reason="slow"`, `result="kept"`, fmt.Sprintf("} %d", 1+slowBoring)},
		{`reason="retry"`, `result="kept"`, "} 1"},
		{`reason="no_healthy_instance"`, `result="kept"`, "} 1"},
	} {
		if !hasSeries(metrics, "switchyard_telemetry_failure_traces_total", want) {
			t.Errorf("/metrics lacks switchyard_telemetry_failure_traces_total%v:\n%s", want, grepPrefix(metrics, "switchyard_telemetry_failure_traces_total"))
		}
	}
}

func fetchMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitForSpans polls Jaeger until trace id holds n spans.
func waitForSpans(t *testing.T, j *testenv.Jaeger, id string, n int) testenv.JaegerTrace {
	t.Helper()
	var tr testenv.JaegerTrace
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("trace %s with %d spans in jaeger", id, n), func() bool {
		var err error
		tr, err = j.Trace(id)
		return err == nil && len(tr.Spans) >= n
	})
	if len(tr.Spans) != n {
		t.Errorf("trace %s: %d spans, want %d", id, len(tr.Spans), n)
	}
	return tr
}

// splitSpans returns a trace's one server span and its client spans in
// attempt order, checking that each client span is the server span's child.
func splitSpans(t *testing.T, tr testenv.JaegerTrace) (testenv.JaegerSpan, []testenv.JaegerSpan) {
	t.Helper()
	var server *testenv.JaegerSpan
	var clients []testenv.JaegerSpan
	for i, s := range tr.Spans {
		switch k, _ := s.Tag("span.kind"); k {
		case "server":
			server = &tr.Spans[i]
		case "client":
			clients = append(clients, s)
		}
	}
	if server == nil {
		t.Fatalf("trace %s: no server span", tr.TraceID)
	}
	ordered := make([]testenv.JaegerSpan, len(clients))
	for _, c := range clients {
		n, _ := c.Tag("switchyard.attempt")
		k, err := strconv.Atoi(n)
		if err != nil || k >= len(clients) {
			t.Fatalf("trace %s: client span with switchyard.attempt %q among %d", tr.TraceID, n, len(clients))
		}
		ordered[k] = c
		if c.ParentID() != server.SpanID {
			t.Errorf("trace %s: client span %s is not a child of the server span", tr.TraceID, c.SpanID)
		}
	}
	return *server, ordered
}
