package telemetry

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestRecentTracesShowEachAttemptAndLinkToTheUI(t *testing.T) {
	b := newBackend(t)
	cfg := config.Default().Telemetry
	cfg.UIURL = "http://jaeger.example:16686/"
	r := newRig(t, rigOpts{cfg: cfg, instances: []discovery.Instance{{ID: "dead", Address: testenv.DeadAddr(t)}, {ID: "live", Address: b.addr()}}})
	for i := range 2 { // round robin: one of the two tries dead first
		if got := r.do(t, "GET", "/api/x", strconv.Itoa(i), nil); got != 200 {
			t.Fatalf("request %d: %d", i, got)
		}
	}
	rec := httptest.NewRecorder()
	r.tel.RecentTracesHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/traces", nil))
	var got struct {
		UIURL  string          `json:"ui_url"`
		Traces []RecentRequest `json:"traces"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, rec.Body)
	}
	if len(got.Traces) != 2 {
		t.Fatalf("%d recent traces, want 2: %s", len(got.Traces), rec.Body)
	}
	last := parseTraceparent(t, b.headers("1").Get("Traceparent")).TraceID().String()
	if got.Traces[0].TraceID != last {
		t.Errorf("newest trace %s, want the last request's %s", got.Traces[0].TraceID, last)
	}
	retried := 0
	for _, tr := range got.Traces {
		if tr.Route != "/api" || tr.Service != "web" || tr.Status != 200 || tr.URL != "http://jaeger.example:16686/trace/"+tr.TraceID {
			t.Errorf("recent trace %+v", tr)
		}
		n := len(tr.Attempts)
		if n == 0 || tr.Attempts[n-1].Instance != "live" || tr.Attempts[n-1].Status != 200 || tr.Attempts[n-1].Healthy != 2 {
			t.Errorf("attempts %+v: want the last on live, 200, picked among 2", tr.Attempts)
		}
		if n == 2 {
			retried++
			if a := tr.Attempts[0]; a.Instance != "dead" || a.Error != "dial_error" || a.N != 0 {
				t.Errorf("first attempt %+v, want dead with a dial error", a)
			}
		}
	}
	if retried != 1 {
		t.Errorf("%d retried requests among the recent, want 1", retried)
	}
}

func TestRecentTracesKeepABoundedRing(t *testing.T) {
	p := newRecentTraces("")
	sc := func(i int) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i), byte(i >> 8)}, SpanID: trace.SpanID{1, byte(i), byte(i >> 8)}, TraceFlags: trace.FlagsSampled})
	}
	for i := range recentSize + 50 {
		p.OnEnd(tracetest.SpanStub{Name: strconv.Itoa(i), SpanKind: trace.SpanKindServer, SpanContext: sc(i), StartTime: time.Unix(0, 0), EndTime: time.Unix(1, 0)}.Snapshot())
		// A client span whose server span never comes waits, bounded.
		p.OnEnd(tracetest.SpanStub{SpanKind: trace.SpanKindClient, SpanContext: sc(i), Parent: sc(i + 100000)}.Snapshot())
	}
	got := p.snapshot()
	if len(got) != recentSize || got[0].Name != strconv.Itoa(recentSize+49) || got[recentSize-1].Name != "50" {
		t.Fatalf("ring holds %d, newest %q, oldest %q; want %d from %d down to 50", len(got), got[0].Name, got[len(got)-1].Name, recentSize, recentSize+49)
	}
	if cap(p.ring) != recentSize || unsafe.Sizeof(recentRec{}) > 160 {
		t.Errorf("ring of %d entries of %d B, want %d of at most 160", cap(p.ring), unsafe.Sizeof(recentRec{}), recentSize)
	}
	if len(p.pending) > maxPending {
		t.Errorf("%d client spans waiting, want at most %d", len(p.pending), maxPending)
	}
}

// The collector does not scan the ring: its entries and the pending
// attempts hold no pointers.
func TestRecentTracesRingHoldsNoPointers(t *testing.T) {
	var walk func(reflect.Type) bool
	walk = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				if walk(ty.Field(i).Type) {
					return true
				}
			}
			return false
		case reflect.Array:
			return walk(ty.Elem())
		case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			return true
		}
		return false
	}
	for _, ty := range []reflect.Type{reflect.TypeFor[recentRec](), reflect.TypeFor[recentAttempts]()} {
		if walk(ty) {
			t.Errorf("%v holds pointers", ty)
		}
	}
}

// Instances come and go: strings no entry refers to any more leave the
// table, and what the API shows stays the same.
func TestRecentTracesDropUnreferencedStrings(t *testing.T) {
	p := newRecentTraces("http://ui/")
	zone := time.FixedZone("X", 3600)
	sc := func(i int) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2, byte(i), byte(i >> 8)}, SpanID: trace.SpanID{2, byte(i), byte(i >> 8)}, TraceFlags: trace.FlagsSampled})
	}
	const n = 4 * minCompact
	for i := range n {
		p.OnEnd(tracetest.SpanStub{SpanKind: trace.SpanKindClient, SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc(i).TraceID(), SpanID: trace.SpanID{3, byte(i), byte(i >> 8)}, TraceFlags: trace.FlagsSampled}),
			Parent: sc(i), StartTime: time.Unix(0, 0), EndTime: time.Unix(0, 1500000),
			Attributes: []attribute.KeyValue{AttrAttempt.Int(1), AttrInstanceID.String("i" + strconv.Itoa(i)), attribute.String("error.type", "timeout"), AttrHealthy.Int(3), AttrPanic.Bool(true)}}.Snapshot())
		p.OnEnd(tracetest.SpanStub{Name: "GET /r" + strconv.Itoa(i), SpanKind: trace.SpanKindServer, SpanContext: sc(i), StartTime: time.Unix(int64(i), 7).In(zone), EndTime: time.Unix(int64(i)+1, 7),
			Attributes: []attribute.KeyValue{attribute.String("http.route", "/r"), AttrService.String("s"), attribute.Int("http.response.status_code", 504), AttrKeptAfter.StringSlice([]string{"error", "slow"})}}.Snapshot())
	}
	if len(p.strs) > 2*minCompact {
		t.Errorf("%d strings in the table, want at most %d", len(p.strs), 2*minCompact)
	}
	got := p.snapshot()
	for k, r := range got {
		i := n - 1 - k
		want := RecentRequest{TraceID: sc(i).TraceID().String(), Name: "GET /r" + strconv.Itoa(i), Route: "/r", Service: "s", Status: 504,
			Start: time.Unix(int64(i), 7).In(zone), DurationMS: 1000, KeptAfter: []string{"error", "slow"},
			Attempts: []RecentAttempt{{N: 1, Instance: "i" + strconv.Itoa(i), Error: "timeout", DurationMS: 1.5, Healthy: 3, Panic: true}},
			URL:      "http://ui/trace/" + sc(i).TraceID().String()}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(r)
		if string(wj) != string(gj) {
			t.Fatalf("entry %d:\n%s\nwant\n%s", k, gj, wj)
		}
	}
}
