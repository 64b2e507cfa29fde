package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The Request hook decides the head sample by headRule, the SDK by its own
// sampler when a sampled request starts its span: for every sampler name,
// argument and parent, on trace ids around each ratio's bound and random
// ones, they must agree.
func TestTheHeadRuleAgreesWithTheSDKSampler(t *testing.T) {
	names := []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio", "failures+traceidratio", "failures+parentbased_traceidratio"}
	args := []float64{0, 1e-9, 0.01, 0.25, 0.5, 0.999, 1}
	tid := trace.TraceID{1}
	parents := map[string]trace.SpanContext{
		"none":      {},
		"sampled":   trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true}),
		"unsampled": trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{2}, Remote: true}),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range names {
		for _, arg := range args {
			sdk, err := newSampler(name, arg)
			if err != nil {
				t.Fatal(err)
			}
			rule := newHeadRule(name, arg)
			var ids []trace.TraceID
			bound := uint64(arg * (1 << 63))
			for _, low := range []uint64{0, 1, 2*bound - 2, 2*bound - 1, 2 * bound, 2*bound + 1, 1<<64 - 1} {
				var id trace.TraceID
				id[0] = 1
				binary.BigEndian.PutUint64(id[8:], low)
				ids = append(ids, id)
			}
			for range 200 {
				var id trace.TraceID
				binary.BigEndian.PutUint64(id[:8], rng.Uint64())
				binary.BigEndian.PutUint64(id[8:], rng.Uint64())
				ids = append(ids, id)
			}
			for pname, parent := range parents {
				ctx := context.Background()
				if parent.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
				}
				for _, id := range ids {
					want := sdk.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: id, Kind: trace.SpanKindServer}).Decision == sdktrace.RecordAndSample
					if got := rule.sampled(parent, id); got != want {
						t.Fatalf("%s(%v), parent %s, trace id %s: head rule says sampled=%v, the SDK %v", name, arg, pname, id, got, want)
					}
					// A decision said not to depend on the trace id is the SDK's for every id.
					if got, ok := rule.decided(parent); ok && got != want {
						t.Fatalf("%s(%v), parent %s, trace id %s: head rule decided sampled=%v, the SDK %v", name, arg, pname, id, got, want)
					}
				}
			}
		}
	}
}

// extractParent must read exactly what propagation.TraceContext extracts.
func TestExtractParentReadsWhatTheTraceContextPropagatorReads(t *testing.T) {
	valid := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []http.Header{
		{},
		{"Traceparent": {valid}},
		{"Traceparent": {valid}, "Tracestate": {"client=1,other=x"}},
		{"Traceparent": {valid}, "Tracestate": {"not a tracestate"}},
		{"Traceparent": {valid, "00-11111111111111111111111111111111-2222222222222222-00"}},
		{"Traceparent": {""}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-04"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"}},
		{"Traceparent": {"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"}},
		{"Traceparent": {"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff"}},
		{"Traceparent": {"fe-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		{"Traceparent": {"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		{"Traceparent": {"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}},
		{"Traceparent": {"00-00000000000000000000000000000000-b7ad6b7169203331-01"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"}},
		{"Traceparent": {"0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"}},
		{"Traceparent": {"00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01"}},
		{"Tracestate": {"client=1"}},
	}
	for _, h := range cases {
		want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), headerCarrier(h)))
		if got := extractParent(h); !got.Equal(want) || got.TraceState().String() != want.TraceState().String() {
			t.Errorf("%v: extractParent = %v, TraceContext extracts %v", h, got, want)
		}
	}
}

func FuzzExtractParent(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=1")
	f.Add("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", "")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		h := http.Header{"Traceparent": {tp}, "Tracestate": {ts}}
		want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), headerCarrier(h)))
		if got := extractParent(h); !got.Equal(want) || got.TraceState().String() != want.TraceState().String() {
			t.Errorf("%q %q: extractParent = %v, TraceContext extracts %v", tp, ts, got, want)
		}
	})
}

// The traceparent sent upstream is what the propagator would write for
// the same ids, and its ids read back.
func TestTraceparentIsFormattedAsThePropagatorFormatsIt(t *testing.T) {
	for i := range 200 {
		flags := trace.TraceFlags(i % 2) // unsampled and sampled
		tid, sid := randomTraceID(), randomSpanID()
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		want := http.Header{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(want))
		var tp traceparent
		tp.set(tid, sid, flags)
		if tp.v[0] != want.Get("Traceparent") {
			t.Errorf("traceparent %q, the propagator writes %q", tp.v[0], want.Get("Traceparent"))
		}
		if gt, gs := tp.ids(); gt != tid || gs != sid {
			t.Errorf("ids read back %s %s, want %s %s", gt, gs, tid, sid)
		}
	}
}

func TestHex8WritesEveryDigit(t *testing.T) {
	for _, x := range []uint32{0, 0x01234567, 0x89abcdef, 0xfedcba98, 0xffffffff, 0x9a9a9a9a} {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], hex8(x))
		if want := fmt.Sprintf("%08x", x); string(b[:]) != want {
			t.Errorf("hex8(%#x) = %q, want %q", x, b[:], want)
		}
	}
}

// The ids of unsampled requests come from a generator per request state:
// across generators no id repeats, and the trace ids' low half, which the
// ratio sampler reads, is uniform (each bit set about half the time, a
// quarter sampled at ratio 0.25).
func TestIDRandDrawsDistinctUniformIDs(t *testing.T) {
	const gens, per = 8, 5000
	seen := make(map[trace.TraceID]bool, gens*per)
	spans := make(map[trace.SpanID]bool, gens*per)
	var bits [64]int
	quarter, rule := 0, newHeadRule("traceidratio", 0.25)
	for range gens {
		g := newIDRand()
		for range per {
			tid, sid := g.traceID(), g.spanID()
			if seen[tid] || spans[sid] {
				t.Fatalf("id drawn twice: %s %s", tid, sid)
			}
			seen[tid], spans[sid] = true, true
			low := binary.BigEndian.Uint64(tid[8:])
			for i := range bits {
				bits[i] += int(low >> i & 1)
			}
			if rule.sampled(trace.SpanContext{}, tid) {
				quarter++
			}
		}
	}
	n := gens * per
	for i, c := range bits {
		// 40000 fair coins: 6 standard deviations is 600.
		if c < n/2-600 || c > n/2+600 {
			t.Errorf("bit %d of the trace ids' low half set %d times in %d", i, c, n)
		}
	}
	if quarter < n/4-520 || quarter > n/4+520 { // 6 standard deviations
		t.Errorf("ratio 0.25 sampled %d of %d", quarter, n)
	}
}
