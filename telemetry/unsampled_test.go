package telemetry

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/config"
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

// The Request hook samples on ids of its own and calls the SDK only for a
// sampled request; the SDK must agree: at 50%, exactly the requests that
// went upstream with the sampled flag are exported, with the ids sent.
func TestTheHeadDecisionAndTheExportedSpansAgree(t *testing.T) {
	b := newBackend(t)
	cfg := rigOpts{instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}}
	cfg.cfg = config.Default().Telemetry
	cfg.cfg.Sampler, cfg.cfg.SamplerArg = "traceidratio", 0.5
	r := newRig(t, cfg)
	const n = 64
	sent := map[string]string{} // trace id -> parent span id sent upstream, sampled only
	for i := range n {
		id := strconv.Itoa(i)
		r.do(t, "GET", "/api/x", id, nil)
		tp := b.headers(id).Get("Traceparent")
		if sc := parseTraceparent(t, tp); strings.HasSuffix(tp, "-01") {
			sent[sc.TraceID().String()] = sc.SpanID().String()
		}
	}
	if len(sent) == 0 || len(sent) == n {
		t.Fatalf("%d of %d sampled at 50%%", len(sent), n)
	}
	clients := 0
	for _, s := range r.flushed(t) {
		parent, ok := sent[s.SpanContext.TraceID().String()]
		if !ok {
			t.Errorf("span %q of trace %s exported, but its request went upstream unsampled", s.Name, s.SpanContext.TraceID())
			continue
		}
		if s.SpanKind == trace.SpanKindClient {
			clients++
			if s.SpanContext.SpanID().String() != parent {
				t.Errorf("client span %s, but upstream was told parent %s", s.SpanContext.SpanID(), parent)
			}
		}
	}
	if clients != len(sent) {
		t.Errorf("%d client spans exported for %d sampled requests", clients, len(sent))
	}
}
