package telemetry

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestARequestIsOneServerSpanWithOneClientSpanPerAttempt(t *testing.T) {
	b := newBackend(t)
	r := newRig(t, rigOpts{instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
	if got := r.do(t, "GET", "/api/items/42?q=secret", "one", nil); got != 200 {
		t.Fatalf("status %d", got)
	}
	spans := r.flushed(t)
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want server and client: %v", len(spans), spans)
	}
	server, client := spans[1], spans[0] // the client span ends first
	if server.Name != "GET /api" || server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span %q kind %v, want \"GET /api\" server", server.Name, server.SpanKind)
	}
	wantAttrs(t, server, map[string]string{
		"http.request.method":       "GET",
		"http.route":                "/api",
		"url.path":                  "/api/items/42",
		"url.scheme":                "http",
		"http.response.status_code": "200",
		"switchyard.service":        "web",
		"switchyard.attempts":       "1",
	})
	if server.Status.Code != codes.Unset {
		t.Errorf("server status %v, want unset", server.Status)
	}
	if client.Name != "GET" || client.SpanKind != trace.SpanKindClient {
		t.Errorf("client span %q kind %v, want \"GET\" client", client.Name, client.SpanKind)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Errorf("client span is not a child of the server span")
	}
	host, port := splitHostPort(b.addr())
	wantAttrs(t, client, map[string]string{
		"server.address":                 host,
		"server.port":                    strconv.Itoa(port),
		"switchyard.service":             "web",
		"switchyard.instance.id":         "web-1",
		"switchyard.lb.policy":           "round_robin",
		"switchyard.lb.effective_weight": "1",
		"switchyard.attempt":             "0",
		"switchyard.healthy_instances":   "1",
		"http.response.status_code":      "200",
		"url.full":                       "http://" + b.addr() + "/api/items/42",
	})

	sc := parseTraceparent(t, b.headers("one").Get("Traceparent"))
	if sc.TraceID() != server.SpanContext.TraceID() || sc.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("backend saw traceparent %s, want trace %s parent %s", b.headers("one").Get("Traceparent"),
			server.SpanContext.TraceID(), client.SpanContext.SpanID())
	}
}

func TestADialErrorShowsAsTwoClientSpansTheFirstFailed(t *testing.T) {
	b := newBackend(t)
	dead := testenv.DeadAddr(t)
	r := newRig(t, rigOpts{instances: []discovery.Instance{{ID: "dead", Address: dead}, {ID: "live", Address: b.addr()}}})
	// Round robin with two instances: one of two requests picks the dead
	// one first.
	for i := range 2 {
		if got := r.do(t, "GET", "/api/x", strconv.Itoa(i), nil); got != 200 {
			t.Fatalf("request %d: status %d, want 200 after a retry", i, got)
		}
	}
	var retried []tracetest.SpanStub
	var id string
	for i := range 2 {
		tp := parseTraceparent(t, b.headers(strconv.Itoa(i)).Get("Traceparent"))
		if spans := byTrace(r.flushed(t))[tp.TraceID().String()]; len(spans) == 3 {
			retried, id = spans, strconv.Itoa(i)
		}
	}
	if retried == nil {
		t.Fatalf("no trace with a retry among %v", byTrace(r.flushed(t)))
	}
	var server tracetest.SpanStub
	var clients []tracetest.SpanStub
	for _, s := range retried {
		if s.SpanKind == trace.SpanKindServer {
			server = s
		} else {
			clients = append(clients, s)
		}
	}
	if len(clients) != 2 {
		t.Fatalf("want 2 client spans, got %d", len(clients))
	}
	first, second := clients[0], clients[1]
	wantAttrs(t, first, map[string]string{"switchyard.instance.id": "dead", "switchyard.attempt": "0", "error.type": "dial_error", "switchyard.healthy_instances": "2"})
	if first.Status.Code != codes.Error || len(first.Events) == 0 || first.Events[0].Name != "exception" {
		t.Errorf("failed attempt: status %v events %v, want error with an exception event", first.Status, first.Events)
	}
	wantAttrs(t, second, map[string]string{"switchyard.instance.id": "live", "switchyard.attempt": "1", "http.request.resend_count": "1", "http.response.status_code": "200"})
	if second.Status.Code == codes.Error {
		t.Errorf("successful attempt has error status %v", second.Status)
	}
	for _, c := range clients {
		if c.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("client span %v is not a child of the server span", c.Attributes)
		}
	}
	wantAttrs(t, server, map[string]string{"switchyard.attempts": "2", "http.response.status_code": "200"})
	// The retry overwrote the first attempt's traceparent.
	if got := parseTraceparent(t, b.headers(id).Get("Traceparent")); got.SpanID() != second.SpanContext.SpanID() {
		t.Errorf("backend saw parent span %s, want the second attempt's %s", got.SpanID(), second.SpanContext.SpanID())
	}
	if n := len(b.headers(id).Values("Traceparent")); n != 1 {
		t.Errorf("backend saw %d traceparent headers, want 1", n)
	}
}

func TestAnIncomingTraceparentIsContinuedOnlyWhenTrusted(t *testing.T) {
	const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	in := http.Header{"Traceparent": {incoming}, "Tracestate": {"client=1"}, "Baggage": {"tenant=blue"}}
	for _, trust := range []bool{true, false} {
		t.Run("trust="+strconv.FormatBool(trust), func(t *testing.T) {
			b := newBackend(t)
			cfg := config.Default().Telemetry
			cfg.TrustIncomingTrace = trust
			r := newRig(t, rigOpts{cfg: cfg, instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
			r.do(t, "GET", "/api", "x", in)
			spans := r.flushed(t)
			server := spans[len(spans)-1]
			seen := b.headers("x")
			got := parseTraceparent(t, seen.Get("Traceparent"))
			if got.TraceID() != server.SpanContext.TraceID() {
				t.Errorf("backend trace %s, server span trace %s", got.TraceID(), server.SpanContext.TraceID())
			}
			continued := server.SpanContext.TraceID().String() == "0af7651916cd43dd8448eb211c80319c"
			if continued != trust {
				t.Errorf("trace continued = %v, want %v", continued, trust)
			}
			if trust {
				if server.Parent.SpanID().String() != "b7ad6b7169203331" || !server.Parent.IsRemote() {
					t.Errorf("server parent %v, want the remote b7ad6b7169203331", server.Parent)
				}
				if seen.Get("Tracestate") != "client=1" || seen.Get("Baggage") != "tenant=blue" {
					t.Errorf("tracestate %q baggage %q not propagated", seen.Get("Tracestate"), seen.Get("Baggage"))
				}
			} else {
				if len(server.Links) != 1 || server.Links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" {
					t.Errorf("untrusted: want a link to the client's span, got %v", server.Links)
				}
				if seen.Get("Tracestate") != "" {
					t.Errorf("untrusted: client tracestate %q forwarded with our traceparent", seen.Get("Tracestate"))
				}
			}
		})
	}
}

func TestServerSpanNamesAndStatus(t *testing.T) {
	b := newBackend(t)
	r := newRig(t, rigOpts{instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
	empty := newRig(t, rigOpts{})
	for _, tc := range []struct {
		name         string
		rig          *rig
		method, path string
		wantStatus   int
		wantName     string
		wantMethod   string
		wantError    bool
	}{
		{"a standard method is named with the route prefix, not the path", r, "DELETE", "/api/users/7", 200, "DELETE /api", "DELETE", false},
		{"a non-standard method is HTTP and _OTHER", r, "PURGE", "/api/cache", 200, "HTTP /api", "_OTHER", false},
		{"an unmatched path is named by the method alone", r, "GET", "/nowhere/42", 404, "GET", "GET", false},
		{"an upstream 5xx marks the server span as error", r, "GET", "/api/fail", 500, "GET /api", "GET", true},
		{"no healthy instance is a 503 error", empty, "GET", "/api", 503, "GET /api", "GET", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rig.do(t, tc.method, tc.path, tc.name, nil); got != tc.wantStatus {
				t.Fatalf("status %d, want %d", got, tc.wantStatus)
			}
			spans := tc.rig.flushed(t)
			tc.rig.spans.Reset()
			var server *tracetest.SpanStub
			for i := range spans {
				if spans[i].SpanKind == trace.SpanKindServer {
					server = &spans[i]
				}
			}
			if server == nil {
				t.Fatal("no server span")
			}
			if server.Name != tc.wantName {
				t.Errorf("name %q, want %q", server.Name, tc.wantName)
			}
			wantAttrs(t, *server, map[string]string{"http.request.method": tc.wantMethod, "http.response.status_code": strconv.Itoa(tc.wantStatus)})
			if tc.wantMethod == "_OTHER" {
				wantAttrs(t, *server, map[string]string{"http.request.method_original": tc.method})
			}
			if isErr := server.Status.Code == codes.Error; isErr != tc.wantError {
				t.Errorf("error status = %v, want %v", isErr, tc.wantError)
			}
		})
	}
}

func TestTheAccessLogNamesTheInstanceThatServed(t *testing.T) {
	b := newBackend(t)
	var out testenv.SyncBuffer
	r := newRig(t, rigOpts{access: &out, instances: []discovery.Instance{{ID: "dead", Address: testenv.DeadAddr(t)}, {ID: "live", Address: b.addr()}}})
	for i := range 2 {
		r.do(t, "GET", "/api/x", strconv.Itoa(i), nil)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 access lines, got %q", out.String())
	}
	for i, line := range lines {
		var e struct {
			TraceID    string  `json:"trace_id"`
			Route      string  `json:"route"`
			Service    string  `json:"service"`
			Instance   string  `json:"instance"`
			Status     int     `json:"status"`
			DurationMS float64 `json:"duration_ms"`
			Attempts   int     `json:"attempts"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		tp := parseTraceparent(t, b.headers(strconv.Itoa(i)).Get("Traceparent"))
		if e.TraceID != tp.TraceID().String() || e.Route != "/api" || e.Service != "web" || e.Instance != "live" || e.Status != 200 || e.DurationMS <= 0 {
			t.Errorf("access line %q: want trace %s, route /api, service web, instance live, status 200", line, tp.TraceID())
		}
	}
}

func TestTheAccessLogCarriesTheClientTraceIDWithoutTracing(t *testing.T) {
	b := newBackend(t)
	var out testenv.SyncBuffer
	r := newRig(t, rigOpts{access: &out, noTracing: true, instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
	r.do(t, "GET", "/api", "x", http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	if !strings.Contains(out.String(), `"trace_id":"0af7651916cd43dd8448eb211c80319c"`) || !strings.Contains(out.String(), `"instance":"web-1"`) {
		t.Errorf("access line %q lacks the client's trace id or the instance", out.String())
	}
	if got := b.headers("x").Get("Traceparent"); got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("tracing off must pass traceparent through untouched, backend saw %q", got)
	}
}

func parseTraceparent(t *testing.T, v string) trace.SpanContext {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 {
		t.Fatalf("bad traceparent %q", v)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("traceparent %q: %v", v, err)
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		t.Fatalf("traceparent %q: %v", v, err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

func TestTheAccessLogWorksWithTelemetryDisabled(t *testing.T) {
	b := newBackend(t)
	var out testenv.SyncBuffer
	cfg := config.Default().Telemetry
	cfg.Disabled = true
	r := newRig(t, rigOpts{cfg: cfg, access: &out, noTracing: true, instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
	if r.tel.MetricsHandler() != nil {
		t.Error("disabled telemetry serves metrics")
	}
	r.do(t, "GET", "/api/x", "x", nil)
	if !strings.Contains(out.String(), `"route":"/api"`) || !strings.Contains(out.String(), `"instance":"web-1"`) || !strings.Contains(out.String(), `"status":200`) {
		t.Errorf("access line %q", out.String())
	}
}

func TestProbesAreTracedOnlyWhenAskedTo(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run("trace_probes="+strconv.FormatBool(traced), func(t *testing.T) {
			cfg := config.Default().Telemetry
			cfg.TraceProbes = traced
			r := newRig(t, rigOpts{cfg: cfg})
			r.tel.ProbeHook()("web", "web-1", 5*time.Millisecond, errors.New("connection refused"))
			spans := r.flushed(t)
			if !traced {
				if len(spans) != 0 {
					t.Errorf("probe traced without telemetry.trace_probes: %v", spans)
				}
				return
			}
			if len(spans) != 1 || spans[0].Name != "health probe" || spans[0].Status.Code != codes.Error {
				t.Fatalf("want one failed \"health probe\" span, got %v", spans)
			}
			wantAttrs(t, spans[0], map[string]string{"switchyard.service": "web", "switchyard.instance.id": "web-1"})
			if d := spans[0].EndTime.Sub(spans[0].StartTime); d != 5*time.Millisecond {
				t.Errorf("probe span lasts %s, want the probe's 5ms", d)
			}
		})
	}
}
