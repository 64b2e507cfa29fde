package telemetry

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-gw/switchyard/discovery"
)

func TestAnUnsampledRequestCarriesItsDecisionUpstreamAndIsStillCounted(t *testing.T) {
	const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" // flags 00: not sampled
	b := newBackend(t)
	r := newRig(t, rigOpts{instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
	in := http.Header{"Traceparent": {incoming}, "Tracestate": {"client=1"}}
	if got := r.do(t, "GET", "/api/items/1", "x", in); got != 200 {
		t.Fatalf("status %d", got)
	}

	seen := b.headers("x")
	tp := seen.Get("Traceparent")
	if sc := parseTraceparent(t, tp); sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend saw traceparent %q, want the client's trace, not sampled", tp)
	}
	if got := seen.Get("Tracestate"); got != "client=1" {
		t.Errorf("backend saw tracestate %q, want the trusted client's", got)
	}
	if spans := r.flushed(t); len(spans) != 0 {
		t.Errorf("an unsampled request recorded %d spans: %v", len(spans), spans)
	}
	m := scrape(t, r.tel)
	wantSeries(t, m, "switchyard_requests_total", `route="/api"`, `service="web"`, `method="GET"`, `status_class="2xx"`)
	wantSeries(t, m, "switchyard_upstream_attempts_total", `service="web"`, `instance="web-1"`, `outcome="ok"`)
}
