package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// syncCapture is captureTransport safe for concurrent use.
type syncCapture struct {
	mu sync.Mutex
	captureTransport
}

func (c *syncCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.captureTransport.RoundTrip(r)
}

func (c *syncCapture) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bodies
	c.bodies = nil
	return b
}

// pathUpstream is the upstream transport of pathRig: /api/fail answers
// 500, the first attempt of each /api/retry request fails to connect,
// anything else answers 200. It notes what each attempt carried.
type pathUpstream struct {
	mu       sync.Mutex
	last     string          // the instance of the last attempt
	tried    map[string]bool // X-Test ids seen
	attempts []string        // trace headers and context of each attempt
}

func (u *pathUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.last = r.URL.Host
	sc := trace.SpanContextFromContext(r.Context())
	var bag []string // members in any order, as the propagator writes them
	for _, v := range r.Header["Baggage"] {
		bag = append(bag, strings.Split(v, ",")...)
	}
	slices.Sort(bag)
	u.attempts = append(u.attempts, fmt.Sprintf("ctx=%s-%s-%s traceparent=%q tracestate=%q baggage=%q",
		sc.TraceID(), sc.SpanID(), sc.TraceFlags(), r.Header["Traceparent"], r.Header["Tracestate"], bag))
	id := r.Header.Get("X-Test")
	if r.URL.Path == "/api/retry" && !u.tried[id] {
		u.tried[id] = true
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	}
	status := 200
	if r.URL.Path == "/api/fail" {
		status = 500
	}
	return &http.Response{StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// pathRig is a gateway whose spans go, over OTLP http/protobuf, either
// through the record path (the direct exporter) or through the SDK with
// the official exporter.
type pathRig struct {
	tel     *Telemetry
	gw      *gateway.Gateway
	up      *pathUpstream
	capture *syncCapture
	access  *testenv.SyncBuffer
	logged  int // access log bytes before the requests compared
}

func newPathRig(t *testing.T, cfg config.Telemetry, sdk bool) *pathRig {
	t.Helper()
	capture := &syncCapture{}
	cfg.Endpoint, cfg.Protocol, cfg.SpanExporter = "http://127.0.0.1:4318", ProtocolHTTP, SpanExporterDirect
	access := &testenv.SyncBuffer{}
	opt := Options{Config: cfg, Getenv: noEnv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ExportClient: &http.Client{Transport: capture}, AccessLog: true, AccessWriter: access}
	if sdk {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL("http://127.0.0.1:4318/v1/traces"),
			otlptracehttp.WithHTTPClient(&http.Client{Transport: capture}))
		if err != nil {
			t.Fatal(err)
		}
		opt.SpanExporter = exp
	}
	tel, err := New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if (tel.rq == nil) != sdk {
		t.Fatalf("sdk=%v: record path %v", sdk, tel.rq != nil)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	up := &pathUpstream{tried: map[string]bool{}}
	gw, err := gateway.New(gateway.Options{Proxy: config.Default().Proxy, Hooks: tel.Hooks(), Transport: up,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	gw.SetHealthy("web", []discovery.Instance{{ID: "a", Address: "10.0.0.1:80"}, {ID: "b", Address: "10.0.0.2:80"}}, false)
	gw.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "web"}})
	return &pathRig{tel: tel, gw: gw, up: up, capture: capture, access: access}
}

func (r *pathRig) serve(method, path, id string, h http.Header) int {
	req := httptest.NewRequest(method, "http://gw.example:8080"+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "test/1.0")
	req.Header.Set("X-Test", id)
	req.RemoteAddr = "192.0.2.10:51234"
	w := httptest.NewRecorder()
	r.gw.ServeHTTP(w, req)
	return w.Code
}

// align sends requests until the next pick is instance a, then drops
// every span and note made so far: round robin starts at a random
// instance.
func (r *pathRig) align(t *testing.T) {
	t.Helper()
	for i := 0; ; i++ {
		r.serve("GET", "/api/ok", "align", nil)
		r.up.mu.Lock()
		last := r.up.last
		r.up.mu.Unlock()
		if last == "10.0.0.2:80" {
			break
		}
		if i == 4 {
			t.Fatal("round robin does not alternate")
		}
	}
	if err := r.tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.capture.take()
	r.up.mu.Lock()
	r.up.attempts = nil
	r.up.mu.Unlock()
	r.logged = len(r.access.String())
}

var accessTraceID = regexp.MustCompile(`"trace_id":"[0-9a-f]*"`)

// exported returns the spans exported since the last call, in one
// ResourceSpans and ScopeSpans (each request's must be the same), sorted
// by kind and attempt.
func (r *pathRig) exported(t *testing.T) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	if err := r.tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out *coltracepb.ExportTraceServiceRequest
	for _, body := range r.capture.take() {
		req := unmarshalRequest(t, body)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				if out == nil {
					out = &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
						Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
						ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}},
					}}}
				}
				o := out.ResourceSpans[0]
				if !proto.Equal(o.Resource, rs.Resource) || o.SchemaUrl != rs.SchemaUrl ||
					!proto.Equal(o.ScopeSpans[0].Scope, ss.Scope) || o.ScopeSpans[0].SchemaUrl != ss.SchemaUrl {
					t.Fatalf("spans of several resources or scopes:\n%v", prototext.Format(req))
				}
				o.ScopeSpans[0].Spans = append(o.ScopeSpans[0].Spans, ss.Spans...)
			}
		}
	}
	if out == nil {
		t.Fatal("no spans exported")
	}
	spans := out.ResourceSpans[0].ScopeSpans[0].Spans
	slices.SortStableFunc(spans, func(a, b *tracepb.Span) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return int(intAttr(a, "switchyard.attempt") - intAttr(b, "switchyard.attempt"))
	})
	return out
}

func intAttr(s *tracepb.Span, key string) int64 {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetIntValue()
		}
	}
	return -1
}

// normalise replaces, in req and notes, the ids (by first appearance) and
// the times, which differ from run to run; it checks the times first.
func normalise(t *testing.T, req *coltracepb.ExportTraceServiceRequest, notes []string) []string {
	t.Helper()
	ids := map[string]string{}
	id := func(b []byte) []byte {
		if len(b) == 0 {
			return b
		}
		h := fmt.Sprintf("%x", b)
		n, ok := ids[h]
		if !ok {
			n = fmt.Sprintf("%0*d", len(h), len(ids)+1)
			ids[h] = n
		}
		return []byte(n)
	}
	for _, s := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		if s.StartTimeUnixNano == 0 || s.EndTimeUnixNano < s.StartTimeUnixNano {
			t.Errorf("span %s: start %d, end %d", s.Name, s.StartTimeUnixNano, s.EndTimeUnixNano)
		}
		s.StartTimeUnixNano, s.EndTimeUnixNano = 0, 0
		s.TraceId, s.SpanId, s.ParentSpanId = id(s.TraceId), id(s.SpanId), id(s.ParentSpanId)
		for _, l := range s.Links {
			l.TraceId, l.SpanId = id(l.TraceId), id(l.SpanId)
		}
		for _, e := range s.Events {
			if e.TimeUnixNano == 0 {
				t.Errorf("span %s: event %s without a time", s.Name, e.Name)
			}
			e.TimeUnixNano = 0
		}
	}
	out := slices.Clone(notes)
	for i := range out {
		for h, n := range ids {
			out[i] = strings.ReplaceAll(out[i], h, n)
		}
	}
	return out
}

// TestRecordPathMatchesSDK runs the same requests through the record path
// and through the SDK (official exporter) and compares what reaches the
// collector, what went upstream and what the recent-traces ring shows.
func TestRecordPathMatchesSDK(t *testing.T) {
	parent := http.Header{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"},
		"Tracestate":  {"vendor=abc,other=1"},
		"Baggage":     {"user=alice,tenant=t1"},
	}
	base := config.Default().Telemetry
	base.Sampler, base.SamplerArg, base.TraceProbes = "parentbased_always_on", 1, true
	untrusted := base
	untrusted.TrustIncomingTrace = false
	trusted := base
	trusted.TrustIncomingTrace = true
	failures := trusted
	failures.Sampler, failures.SamplerArg, failures.FailureTracesPerSecond = "failures+traceidratio", 0, 100
	failuresUntrusted := failures
	failuresUntrusted.TrustIncomingTrace = false

	type request struct {
		method, path string
		header       http.Header
	}
	for _, c := range []struct {
		name string
		cfg  config.Telemetry
		reqs []request
		// probe sends a failed health probe instead of requests.
		probe bool
	}{
		{name: "root", cfg: trusted, reqs: []request{{"GET", "/api/items/1", nil}}},
		{name: "parent", cfg: trusted, reqs: []request{{"POST", "/api/items", parent}}},
		{name: "retry", cfg: trusted, reqs: []request{{"GET", "/api/retry", parent}}},
		{name: "error", cfg: trusted, reqs: []request{{"PURGE", "/api/fail", nil}}},
		{name: "no route", cfg: trusted, reqs: []request{{"GET", "/nowhere", nil}}},
		{name: "untrusted parent", cfg: untrusted, reqs: []request{{"GET", "/api/retry", parent}}},
		{name: "kept after the fact", cfg: failures, reqs: []request{{"GET", "/api/fail", nil}}},
		{name: "kept after the fact, parent", cfg: failures, reqs: []request{{"GET", "/api/retry", http.Header{
			"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"Tracestate":  {"ot=th:8,vendor=abc"},
		}}}},
		{name: "kept after the fact, untrusted parent", cfg: failuresUntrusted, reqs: []request{{"GET", "/api/retry", parent}}},
		{name: "probe", cfg: trusted, probe: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got [2]*coltracepb.ExportTraceServiceRequest
			var notes [2][]string
			var recent [2][]RecentRequest
			for i, sdk := range []bool{false, true} {
				r := newPathRig(t, c.cfg, sdk)
				r.align(t)
				for n, q := range c.reqs {
					r.serve(q.method, q.path, fmt.Sprintf("%s-%d", c.name, n), q.header)
				}
				if c.probe {
					r.tel.ProbeHook()("web", "a", 5*time.Millisecond, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("refused")})
				}
				got[i] = r.exported(t)
				r.up.mu.Lock()
				// What went upstream, and the access log's trace ids.
				notes[i] = normalise(t, got[i], append(r.up.attempts, accessTraceID.FindAllString(r.access.String()[r.logged:], -1)...))
				r.up.mu.Unlock()
				// The newest entries: the requests' (align's are older).
				for _, rr := range r.tel.recent.snapshot()[:len(c.reqs)] {
					rr.TraceID, rr.Start, rr.DurationMS = "", time.Time{}, 0
					for k := range rr.Attempts {
						rr.Attempts[k].DurationMS = 0
					}
					recent[i] = append(recent[i], rr)
				}
			}
			if !proto.Equal(got[0], got[1]) {
				t.Errorf("record path:\n%v\nSDK:\n%v", prototext.Format(got[0]), prototext.Format(got[1]))
			}
			if !slices.Equal(notes[0], notes[1]) {
				t.Errorf("upstream saw, record path:\n%s\nSDK:\n%s", strings.Join(notes[0], "\n"), strings.Join(notes[1], "\n"))
			}
			if fmt.Sprint(recent[0]) != fmt.Sprint(recent[1]) {
				t.Errorf("recent traces, record path:\n%+v\nSDK:\n%+v", recent[0], recent[1])
			}
			if testing.Verbose() {
				t.Logf("%v\n%s", prototext.Format(got[0]), strings.Join(notes[0], "\n"))
			}
		})
	}
}
