package telemetry

import (
	"context"
	"encoding/hex"
	"net/http"

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
	if t.set.trustParent {
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

// injectTraceparent sets the traceparent of sc on an outgoing request, and
// its tracestate, replacing what an earlier attempt or the client sent. buf,
// if not nil, holds the value across attempts: it is formatted once.
func injectTraceparent(h http.Header, buf *[1]string, sc trace.SpanContext) {
	if buf == nil {
		buf = new([1]string)
	}
	if buf[0] == "" {
		var b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
		tid, sid := sc.TraceID(), sc.SpanID()
		b[0], b[1], b[2] = '0', '0', '-'
		hex.Encode(b[3:35], tid[:])
		b[35] = '-'
		hex.Encode(b[36:52], sid[:])
		b[52] = '-'
		hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
		buf[0] = string(b[:])
	}
	h["Traceparent"] = buf[:]
	// The key is canonical already: no Header.Del.
	delete(h, "Tracestate")
	if ts := sc.TraceState(); ts.Len() > 0 {
		h["Tracestate"] = []string{ts.String()}
	}
}
