package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"unsafe"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// headSample decides, as the SDK would for the server span, whether the
// request r is sampled, on ids chosen here: the incoming parent's trace id
// when trusted and valid, a random one otherwise, and a random span id. It
// returns the context the server span starts from (holding the extracted
// parent when trusted), that parent (invalid when none or untrusted), the
// server span's context and the decision.
func (t *Telemetry) headSample(ctx context.Context, r *http.Request, method uint8, route string) (context.Context, trace.SpanContext, trace.SpanContext, bool) {
	var parent trace.SpanContext
	if t.set.trustParent && (len(r.Header["Traceparent"]) > 0 || len(r.Header["Baggage"]) > 0) {
		// Without either header the propagators find nothing.
		ctx = t.prop.Extract(ctx, headerCarrier(r.Header))
		parent = trace.SpanContextFromContext(ctx)
	}
	tid := parent.TraceID()
	if !parent.IsValid() {
		tid = randomTraceID()
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: ctx, TraceID: tid, Name: t.serverSpanName(method, route), Kind: trace.SpanKindServer,
	})
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: randomSpanID(), TraceState: res.Tracestate})
	// RecordOnly (no sampler here returns it) goes to the SDK too.
	return ctx, parent, sc, res.Decision != sdktrace.Drop
}

// traceparent is one traceparent header value, formatted in place: the
// header's slice and string point into it, so sending it costs no
// allocation beyond the request state that holds it.
type traceparent struct {
	v [1]string
	b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
}

// injectTraceparent sets the traceparent of sc on an outgoing request, and
// its tracestate, replacing what an earlier attempt or the client sent.
// buf, if not nil, holds the value across attempts: it is formatted once,
// and never written again (v[0] is a string over b).
func injectTraceparent(h http.Header, buf *traceparent, sc trace.SpanContext) {
	if buf == nil {
		buf = new(traceparent)
	}
	if buf.v[0] == "" {
		b := &buf.b
		tid, sid := sc.TraceID(), sc.SpanID()
		b[0], b[1], b[2] = '0', '0', '-'
		hex.Encode(b[3:35], tid[:])
		b[35] = '-'
		hex.Encode(b[36:52], sid[:])
		b[52] = '-'
		hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
		buf.v[0] = unsafe.String(&b[0], len(b))
	}
	h["Traceparent"] = buf.v[:]
	// The key is canonical already: no Header.Del.
	delete(h, "Tracestate")
	if ts := sc.TraceState(); ts.Len() > 0 {
		h["Tracestate"] = []string{ts.String()}
	}
}

// forcedIDs, in a context, are the ids idGen hands out for the next span.
type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

type forcedKey struct{}

// idGen gives a span the ids found in its context (forcedIDs: the ids the
// head sampler decided on, or those already sent upstream) and random
// ones otherwise. Safe for concurrent use.
type idGen struct{}

var _ sdktrace.IDGenerator = idGen{}

func (idGen) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(forcedKey{}).(forcedIDs); ok {
		return f.trace, f.span
	}
	return randomTraceID(), randomSpanID()
}

func (idGen) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(forcedKey{}).(forcedIDs); ok {
		return f.span
	}
	return randomSpanID()
}

func randomTraceID() trace.TraceID {
	var t trace.TraceID
	for !t.IsValid() {
		binary.BigEndian.PutUint64(t[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		binary.BigEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}
