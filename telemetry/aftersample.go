package telemetry

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/gateway"
)

// Failure-biased sampling (a failures+ sampler): a request the head
// sampler did not sample keeps, in its reqState, what its spans need (start
// and end times, each attempt's instance and outcome) and nothing else. If
// it ends interesting (see reasons), its server span and every attempt's
// client span are built from that state, with the trace and span ids that
// were already sent upstream in traceparent, and exported as records (the
// direct exporter) or through a second tracer provider that shares the
// SDK's span pipeline.

// AttrKeptAfter lists why a span was kept after the fact; present only on
// such spans, so span-derived metrics can tell them apart.
const AttrKeptAfter = attribute.Key("switchyard.sampling.kept_after")

// attemptRec is one attempt of a watched request.
type attemptRec struct {
	a          gateway.Attempt
	start, end time.Duration // since the request's start
	status     int
	err        error
	spanID     trace.SpanID // sent upstream as the parent; zero: the server span was
}

// watchPart is what a request watched by failure-biased sampling has
// besides its reqState: the record of every attempt. The incoming parent
// is not kept: the few requests kept after the fact read it again from
// the request's headers.
type watchPart struct {
	out    *http.Request // the outgoing request
	tries  []attemptRec
	triesA [1]attemptRec
}

type watchedReq struct {
	reqState
	watchPart
}

// watch reports whether an unsampled request whose incoming parent is
// parent (invalid: none, or not trusted) may be kept after the fact: only
// when the gateway is the root of its trace or the parent was sampled, so
// that no root is invented for a client's unsampled trace.
func (t *Telemetry) watch(parent trace.SpanContext) bool {
	return t.keep != nil && (!parent.IsValid() || parent.IsSampled())
}

// interesting returns why a watched request that ended with status after
// elapsed is worth keeping; zero when it is not.
func (t *Telemetry) interesting(st *reqState, status int, elapsed time.Duration) reasons {
	var why reasons
	w := st.w
	if status == http.StatusServiceUnavailable && len(w.tries) == 0 && st.route != "" {
		why |= reasonNoHealthy
	}
	if st.ejected {
		why |= reasonEjection
	}
	for i := range w.tries {
		if w.tries[i].a.Panic {
			why |= reasonPanic
			break
		}
	}
	if len(w.tries) > 1 {
		why |= reasonRetry
	}
	if status >= 500 {
		why |= reason5xx
	}
	if t.set.slow > 0 && elapsed > t.set.slow {
		why |= reasonSlow
	}
	return why
}

// startAttempt records the start of an attempt of a watched request and
// returns its record. From the second attempt on, sampling is switched on
// upstream when the cap allows the trace to be kept: the attempt gets a
// span id of its own, sent with the sampled flag, so that what the
// instance records joins the trace.
func (t *Telemetry) startAttempt(st *reqState, a gateway.Attempt) *attemptRec {
	w := st.w
	w.tries = append(w.tries, attemptRec{a: a, start: time.Since(st.start)})
	rec := &w.tries[len(w.tries)-1]
	if a.N > 0 && st.kept == keepUndecided {
		st.kept = keepRefused
		if t.keep.allow(st.route, reasonRetry, st.start.Add(rec.start)) {
			st.kept = keepGranted
		}
	}
	if st.kept == keepGranted {
		rec.spanID = randomSpanID()
	}
	return rec
}

// Whether the cap was asked for a watched request's trace (at its second
// attempt, or when it ends).
const (
	keepUndecided uint8 = iota
	keepGranted
	keepRefused
)

// finishLate decides, when a watched request ends, whether it is kept, and
// exports its spans if so.
func (t *Telemetry) finishLate(st *reqState, status int, elapsed time.Duration) {
	why := t.interesting(st, status, elapsed)
	if why == 0 {
		return
	}
	switch st.kept {
	case keepRefused:
		return
	case keepUndecided:
		if !t.keep.allow(st.route, why, st.start.Add(elapsed)) {
			return
		}
	}
	t.exportLate(st, status, st.start.Add(elapsed), why)
}

// exportLate records the server span and one client span per attempt,
// with the times and ids the request really had: as records on the record
// path, else through the late tracer provider.
func (t *Telemetry) exportLate(st *reqState, status int, end time.Time, why reasons) {
	w := st.w
	tid, sid := st.tp.ids()
	var in, parent, link trace.SpanContext // the incoming parent, as the Request hook read it
	if t.set.trustParent {
		in = extractParent(st.r.Header)
	}
	switch {
	case in.IsValid():
		// No sampling probability travels on: the parent's may not be
		// claimed for a span the head sampler did not pick.
		parent = in.WithTraceState(in.TraceState().Delete("ot"))
	case !t.set.trustParent && len(st.r.Header["Traceparent"]) > 0:
		link = extractParent(st.r.Header)
	}
	kept := attribute.StringSlice(string(AttrKeptAfter), why.names())
	server := t.serverRec(st, spanContext(tid, sid, parent.TraceFlags(), parent.TraceState()), parent, link, end, status,
		make([]attribute.KeyValue, 0, maxSpanAttrs+1))
	server.attrs = append(server.attrs, kept)
	var sdkServer trace.Span
	if t.rq == nil {
		sdkServer = t.startLate(context.Background(), &server)
	}
	for i := range w.tries {
		rec := &w.tries[i]
		cid := rec.spanID // the id sent upstream, if the attempt had one
		if !cid.IsValid() {
			cid = randomSpanID()
		}
		recEnd := end
		if rec.end != 0 {
			recEnd = st.start.Add(rec.end)
		}
		c := t.clientRec(server.sc, cid, w.out, rec.a, st.start.Add(rec.start), recEnd, rec.status, rec.err,
			make([]attribute.KeyValue, 0, maxSpanAttrs+1))
		c.attrs = append(c.attrs, kept)
		if sdkServer == nil {
			t.record(&c)
		} else {
			t.startLate(trace.ContextWithSpan(context.Background(), sdkServer), &c).End(trace.WithTimestamp(c.end))
		}
	}
	if sdkServer == nil {
		t.record(&server)
	} else {
		sdkServer.End(trace.WithTimestamp(server.end))
	}
}

// startLate starts, through the late tracer provider, the span that r
// describes, under the span in ctx (a server span: under r's parent, or a
// new root), with all of r but its end.
func (t *Telemetry) startLate(ctx context.Context, r *spanRec) trace.Span {
	ctx = context.WithValue(ctx, forcedKey{}, forcedIDs{r.sc.TraceID(), r.sc.SpanID()})
	opts := []trace.SpanStartOption{trace.WithSpanKind(r.kind), trace.WithTimestamp(r.start)}
	if r.kind == trace.SpanKindServer {
		if r.parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, r.parent)
		} else {
			opts = append(opts, trace.WithNewRoot())
		}
	}
	for _, l := range r.links {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l.SpanContext, Attributes: l.Attributes}))
	}
	_, span := t.late.Start(ctx, r.name, opts...)
	span.SetAttributes(r.attrs...)
	for _, ev := range r.events {
		span.AddEvent(ev.Name, trace.WithTimestamp(ev.Time), trace.WithAttributes(ev.Attributes...))
	}
	if r.status != codes.Unset {
		span.SetStatus(r.status, r.desc)
	}
	return span
}
