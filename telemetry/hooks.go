package telemetry

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/h1"
)

// Span attribute keys of our own (the rest are HTTP semantic conventions).
const (
	AttrService    = attribute.Key("switchyard.service")
	AttrInstanceID = attribute.Key("switchyard.instance.id")
	AttrLBPolicy   = attribute.Key("switchyard.lb.policy")
	AttrAttempt    = attribute.Key("switchyard.attempt")
	AttrHealthy    = attribute.Key("switchyard.healthy_instances")
	AttrAttempts   = attribute.Key("switchyard.attempts")
	AttrPanic      = attribute.Key("switchyard.lb.panic")
	// AttrWeight is the instance's effective weight when it was picked:
	// its configured weight, less while it ramps up (slow start).
	AttrWeight = attribute.Key("switchyard.lb.effective_weight")
)

// Hooks returns the gateway hooks for what is enabled (tracing, metrics,
// access log). With everything off it returns zero Hooks, which cost the
// gateway nothing.
func (t *Telemetry) Hooks() gateway.Hooks {
	if !t.tracing && t.inst == nil && t.access == nil {
		return gateway.Hooks{}
	}
	h := gateway.Hooks{Request: t.request, Attempt: t.attempt}
	if t.keep != nil {
		h.Ejected = t.ejected
	}
	if t.tracing {
		h.Release = release
		// Every attempt of a traced request sets them (startAttemptState).
		h.Fields = []string{"Traceparent", "Tracestate"}
	}
	return h
}

// reqState is what telemetry knows about one request when tracing or the
// access log is on (with metrics only, the smaller metricsEnd). It is created
// by the Request hook and is the context it hands back (one allocation,
// not a state and a context) and what the gateway tells of each attempt's
// outcome (EndAttempt) and of the request's end (End), which it does from
// the request's goroutine, in order: no locking.
//
// An unsampled request, the common case, has this state only. A sampled
// one also has a sampledPart and one that failure-biased sampling may keep
// after the fact a watchPart, each allocated with the state in one object
// (sampledReq, watchedReq).
type reqState struct {
	context.Context // the request's context before the Request hook
	t               *Telemetry
	r               *http.Request // the incoming request
	start           time.Time
	route           string
	service         string
	up              *gateway.Upstream // the instance of the latest attempt
	attempts        int32
	method          uint8
	ejected         bool // an attempt made passive health eject its instance (watched requests)
	// Watched requests: keepUndecided, keepGranted or keepRefused. Here
	// rather than in watchPart, in padding, so that a watchedReq fits the
	// 352-byte size class.
	kept uint8
	// The current attempt's traceparent is tp, and its tracestate ts,
	// written into the request head by the gateway's transport
	// (AppendHeadFields) rather than set in the header map.
	direct bool
	// When tracing and not sampled: the traceparent sent upstream, with
	// the ids of the server span that was not recorded, and the tracestate
	// sent with it (the trusted parent's, formatted; "" for none).
	tp  traceparent
	ts  string
	ids idRand       // kept when the state is reused
	smp *sampledPart // nil when not sampled
	w   *watchPart   // nil unless failure-biased sampling watches the request
}

// sampledPart is what a sampled request has besides its reqState.
type sampledPart struct {
	span    trace.Span      // the server span (SDK); nil on the record path
	curSpan trace.Span      // the current attempt's client span (SDK)
	cur     gateway.Attempt // the current attempt
	out     *http.Request   // the outgoing request
	// On the record path (record.go), what the spans' records need: the
	// server span's context, which the request's context carries, its
	// incoming parent (invalid: a root) or, untrusted, the link to it,
	// and the current attempt's client span id (zero between attempts)
	// and start.
	srv      ctxSpan
	parent   trace.SpanContext
	link     trace.SpanContext
	curID    trace.SpanID
	curStart time.Time
	baggage  bool // the client's baggage is in the context, to go upstream
}

// serverContext is the span context of the server span.
func (s *sampledPart) serverContext() trace.SpanContext {
	if s.span != nil {
		return s.span.SpanContext()
	}
	return s.srv.sc
}

type sampledReq struct {
	reqState
	sampledPart
}

type stateKey struct{}

// Value returns st for stateKey and asks the parent context otherwise.
func (st *reqState) Value(k any) any {
	if _, ok := k.(stateKey); ok {
		return st
	}
	return st.Context.Value(k)
}

// request is the gateway's Request hook.
func (t *Telemetry) request(r *http.Request, route, service string) (context.Context, gateway.RequestEnd) {
	start, method := time.Now(), methodIndex(r.Method)
	if !t.tracing && t.access == nil {
		// Metrics only: no per-request state but what the metrics need.
		m := &metricsEnd{Context: r.Context(), t: t, start: start, route: route, service: service, method: method}
		return m, m
	}
	if !t.tracing {
		st := &reqState{Context: r.Context(), t: t, r: r, start: start, route: route, service: service, method: method}
		return st, st
	}
	// The head sampler runs here, on ids chosen here; the SDK is called
	// for a sampled request only, and comes to the same decision on the
	// same ids. An unsampled request costs no span and no context of its
	// own: its ids live in its traceparent.
	var parent trace.SpanContext
	if t.set.trustParent {
		parent = extractParent(r.Header)
	}
	tid := parent.TraceID()
	sampled, decided := t.head.decided(parent)
	if decided && sampled {
		// Sampled whatever the trace id: no unsampled state to take.
		if !parent.IsValid() {
			tid = randomTraceID()
		}
		return t.sampledRequest(r, start, route, service, method, parent, tid)
	}
	// The state of an unsampled request, taken first: its generator draws
	// the ids. A sampled request puts it back.
	var st *reqState
	if t.watch(parent) {
		st = watchedStates.Get().(*reqState)
	} else {
		st = unsampledStates.Get().(*reqState)
	}
	if !parent.IsValid() {
		tid = st.ids.traceID()
	}
	if !decided && t.head.byID(tid) {
		st.put()
		return t.sampledRequest(r, start, route, service, method, parent, tid)
	}
	st.Context, st.t, st.r, st.start, st.route, st.service, st.method = r.Context(), t, r, start, route, service, method
	st.tp.set(tid, st.ids.spanID(), 0)
	if ts := parent.TraceState(); ts.Len() > 0 {
		st.ts = ts.String()
	}
	return st, st
}

// sampledRequest starts a sampled request of trace tid whose incoming
// parent is parent (invalid: none, or not trusted).
func (t *Telemetry) sampledRequest(r *http.Request, start time.Time, route, service string, method uint8, parent trace.SpanContext, tid trace.TraceID) (context.Context, gateway.RequestEnd) {
	s := &sampledReq{reqState: reqState{Context: r.Context(), t: t, r: r, start: start, route: route, service: service, method: method}}
	st := &s.reqState
	st.smp = &s.sampledPart
	if t.rq != nil {
		t.startRecorded(st, parent, tid)
		return st, st
	}
	ctx := st.Context
	if t.set.trustParent && (len(r.Header["Traceparent"]) > 0 || len(r.Header["Baggage"]) > 0) {
		// The parent again, for the SDK, with the client's baggage.
		ctx = t.prop.Extract(ctx, headerCarrier(r.Header))
	}
	s.span = t.startServer(ctx, r, method, route, tid, randomSpanID())
	st.Context = trace.ContextWithSpan(ctx, s.span)
	return st, st
}

// The states of unsampled requests (reqState, watchedReq: its reqState
// with w set), reused once the gateway releases them (release). Each is
// made with an id generator of its own, which it keeps when reused.
var (
	unsampledStates = sync.Pool{New: func() any { return &reqState{ids: newIDRand()} }}
	watchedStates   = sync.Pool{New: func() any {
		w := &watchedReq{}
		w.tries = w.triesA[:0]
		w.reqState.w = &w.watchPart
		w.ids = newIDRand()
		return &w.reqState
	}}
)

// release is the gateway's Release hook.
func release(end gateway.RequestEnd) {
	if st, ok := end.(*reqState); ok {
		st.release()
	}
}

// release is told by the gateway that nothing holds the request's context,
// outgoing request or header any more (gateway.Hooks.Release), after End:
// an unsampled request's state, which only this package and the gateway
// saw, goes back for a later request. What End handed on (the access log
// line, the records of a request kept after the fact) was copied out of
// the state. A sampled request's state is left to the collector: its
// context went to the SDK.
func (st *reqState) release() {
	if st.smp == nil && st.tp.isSet() {
		st.put()
	}
}

// put clears an unsampled request's state, but for its id generator, and
// puts it back in its pool.
func (st *reqState) put() {
	if w := st.w; w != nil {
		*w = watchPart{}
		w.tries = w.triesA[:0]
		*st = reqState{w: w, ids: st.ids}
		watchedStates.Put(st)
		return
	}
	*st = reqState{ids: st.ids}
	unsampledStates.Put(st)
}

// metricsEnd is a request's state with metrics only: the context the
// Request hook hands back, and what ends the request and its attempts.
type metricsEnd struct {
	context.Context // the request's context before the Request hook
	t               *Telemetry
	start           time.Time
	route           string
	service         string
	method          uint8
	cur             gateway.Attempt // the current attempt
}

// Value returns m for stateKey and asks the parent context otherwise.
func (m *metricsEnd) Value(k any) any {
	if _, ok := k.(stateKey); ok {
		return m
	}
	return m.Context.Value(k)
}

// End records the request (gateway.RequestEnd).
func (m *metricsEnd) End(status int) {
	m.t.inst.recordRequest(m.route, m.service, m.method, statusClass(status), time.Since(m.start))
}

// EndAttempt records the current attempt (gateway.AttemptEnd).
func (m *metricsEnd) EndAttempt(status int, err error) {
	m.t.inst.recordAttempt(m.cur.Upstream.Service, m.cur.Upstream.ID, m.cur.N, attemptOutcome(status, err))
}

// startRecorded starts a sampled request on the record path: the server
// span's ids, parent or link, and a context that carries them.
func (t *Telemetry) startRecorded(st *reqState, parent trace.SpanContext, tid trace.TraceID) {
	s, r, ctx := st.smp, st.r, st.Context
	if t.set.trustParent {
		s.parent = parent
		if len(r.Header["Baggage"]) > 0 {
			ctx = propagation.Baggage{}.Extract(ctx, headerCarrier(r.Header))
			s.baggage = baggage.FromContext(ctx).Len() > 0
		}
	} else if len(r.Header["Traceparent"]) > 0 {
		s.link = extractParent(r.Header)
	}
	// parent is invalid (no flags, no state) unless trusted and valid.
	s.srv.sc = spanContext(tid, randomSpanID(), parent.TraceFlags(), parent.TraceState())
	st.Context = trace.ContextWithSpan(ctx, &s.srv)
}

// startServer starts the sampled server span with the ids tid and sid,
// continuing the incoming trace in ctx (or, untrusted, linking it).
func (t *Telemetry) startServer(ctx context.Context, r *http.Request, method uint8, route string, tid trace.TraceID, sid trace.SpanID) trace.Span {
	o := t.serverOpts
	if !t.set.trustParent {
		o = t.newRootOpts
		if len(r.Header["Traceparent"]) > 0 {
			if in := extractParent(r.Header); in.IsValid() {
				o = append(o[:len(o):len(o)], trace.WithLinks(trace.Link{SpanContext: in}))
			}
		}
	}
	ctx = context.WithValue(ctx, forcedKey{}, forcedIDs{tid, sid})
	// Attributes are set once, at the end: one call into the span instead
	// of two. The returned context is not kept: it holds the forced ids.
	_, span := t.tracer.Start(ctx, t.serverSpanName(method, route), o...)
	return span
}

// serverSpanName is "<METHOD> <route>", "HTTP <route>" for a method outside
// the standard set, and the method alone when no route matched (semantic
// conventions); cached so that the request path does not build strings.
func (t *Telemetry) serverSpanName(method uint8, route string) string {
	return t.names.get(nameKey{method, route}, func(k nameKey) string {
		m := methods[k.method]
		if k.method == methodOther {
			m = "HTTP"
		}
		if k.route == "" {
			return m
		}
		return m + " " + k.route
	})
}

type nameKey struct {
	method uint8
	route  string
}

// maxSpanAttrs is the most attributes serverAttrs or clientAttrs return.
const maxSpanAttrs = 15

// attrPool recycles the attribute slices that spans are ended with: the SDK
// span copies what SetAttributes is given, so a slice can be reused as soon
// as the call returns. Safe for concurrent use; the zero value is ready.
type attrPool struct{ p sync.Pool }

// get returns an empty slice with room for maxSpanAttrs attributes.
func (p *attrPool) get() *[]attribute.KeyValue {
	if b, ok := p.p.Get().(*[]attribute.KeyValue); ok {
		return b
	}
	b := make([]attribute.KeyValue, 0, maxSpanAttrs)
	return &b
}

// put returns b, now holding a, to the pool. a must not be used after.
func (p *attrPool) put(b *[]attribute.KeyValue, a []attribute.KeyValue) {
	clear(a) // keep no request strings alive in the pool
	*b = a[:0]
	p.p.Put(b)
}

// serverAttrs appends the server span's attributes to a.
func serverAttrs(a []attribute.KeyValue, r *http.Request, st *reqState, status int) []attribute.KeyValue {
	a = append(a, semconv.HTTPRequestMethodKey.String(methods[st.method]))
	if st.method == methodOther {
		a = append(a, semconv.HTTPRequestMethodOriginal(r.Method))
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	a = append(a, semconv.URLScheme(scheme), semconv.URLPath(r.URL.Path))
	if host, port := splitHostPort(r.Host); host != "" {
		a = append(a, semconv.ServerAddress(host))
		if port > 0 {
			a = append(a, semconv.ServerPort(port))
		}
	}
	if host, _ := splitHostPort(r.RemoteAddr); host != "" {
		a = append(a, semconv.ClientAddress(host))
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		a = append(a, semconv.NetworkProtocolVersion(protoVersion(r)))
	}
	if ua := r.UserAgent(); ua != "" {
		a = append(a, semconv.UserAgentOriginal(ua))
	}
	if st.route != "" {
		a = append(a, semconv.HTTPRoute(st.route))
	}
	if st.service != "" {
		a = append(a, AttrService.String(st.service))
	}
	a = append(a, AttrAttempts.Int(int(st.attempts)))
	if status > 0 {
		a = append(a, semconv.HTTPResponseStatusCode(status))
	}
	if status >= 500 {
		a = append(a, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
	}
	return a
}

// End is called when the request ends (gateway.RequestEnd); status 0
// means the client went away before a status was written.
func (st *reqState) End(status int) {
	t := st.t
	elapsed := time.Since(st.start)
	switch s := st.smp; {
	case s == nil:
	case s.span == nil:
		b := t.attrs.get()
		r := t.serverRec(st, s.srv.sc, s.parent, s.link, st.start.Add(elapsed), status, *b)
		r.pooled = b
		t.record(&r)
	default:
		b := t.attrs.get()
		a := serverAttrs(*b, st.r, st, status)
		s.span.SetAttributes(a...)
		t.attrs.put(b, a)
		if code, desc := serverStatus(status); code != codes.Unset {
			s.span.SetStatus(code, desc)
		}
		s.span.End()
	}
	if st.w != nil {
		t.finishLate(st, status, elapsed)
	}
	if t.inst != nil {
		t.inst.recordRequest(st.route, st.service, st.method, statusClass(status), elapsed)
	}
	if t.access != nil {
		t.logAccess(st, status, elapsed)
	}
}

// attempt is the gateway's Attempt hook: it starts the client span and
// injects its context into the outgoing headers, replacing what an earlier
// attempt of the same request injected.
func (t *Telemetry) attempt(req *http.Request, a gateway.Attempt) gateway.AttemptEnd {
	if st, ok := req.Context().(*reqState); ok {
		// The fast core's request carries the state as its context: no
		// lookup through the context chain.
		return t.startAttemptState(st, req, a)
	}
	switch st := req.Context().Value(stateKey{}).(type) {
	case *metricsEnd:
		st.cur = a
		return st
	case *reqState:
		return t.startAttemptState(st, req, a)
	}
	return nil // not a request this Telemetry's Request hook saw
}

// startAttemptState starts an attempt of a request with state: the client
// span if sampled, the traceparent sent upstream in any case.
func (t *Telemetry) startAttemptState(st *reqState, req *http.Request, a gateway.Attempt) gateway.AttemptEnd {
	st.attempts = int32(a.N + 1)
	st.up = a.Upstream
	switch {
	case st.smp != nil && st.smp.span == nil:
		// The record path: the client span's id and start, and its
		// context sent upstream as the SDK's propagators would send it.
		s := st.smp
		s.cur, s.out = a, req
		s.curID, s.curStart = randomSpanID(), time.Now()
		tp := &st.tp
		if tp.isSet() {
			tp = new(traceparent) // an earlier attempt's value may still be read
		}
		tp.set(s.srv.sc.TraceID(), s.curID, s.srv.sc.TraceFlags()&(trace.FlagsSampled|trace.FlagsRandom))
		tp.inject(req.Header, s.srv.sc.TraceState().String())
		if s.baggage {
			propagation.Baggage{}.Inject(st.Context, headerCarrier(req.Header))
		}
	case st.smp != nil:
		s := st.smp
		s.cur, s.out = a, req
		var sctx context.Context
		sctx, s.curSpan = t.tracer.Start(req.Context(), clientSpanName(req.Method), t.clientOpts...)
		// An untrusted or earlier tracestate must not travel with our
		// traceparent; the propagator sets it again from the span.
		// The key is canonical already: no Header.Del.
		delete(req.Header, "Tracestate")
		t.prop.Inject(sctx, headerCarrier(req.Header))
	case st.w != nil:
		// Not sampled, may be kept after the fact: a record, no span.
		st.w.out = req
		if rec := t.startAttempt(st, a); rec.spanID.IsValid() {
			tid, _ := st.tp.ids()
			tp := new(traceparent)
			tp.set(tid, rec.spanID, trace.FlagsSampled)
			st.direct = false
			tp.inject(req.Header, st.ts)
		} else {
			st.sendTraceparent(req, a.Direct)
		}
	case st.tp.isSet():
		// Not sampled: no client span (it would not be sampled either);
		// the server's ids travel upstream with the decision.
		st.sendTraceparent(req, a.Direct)
	}
	return st
}

// sendTraceparent sends st's traceparent and tracestate with the attempt
// req: written into the head by the gateway's transport when direct (the
// header holds neither field then: Hooks.Fields), else in the header map.
func (st *reqState) sendTraceparent(req *http.Request, direct bool) {
	if st.direct = direct; !direct {
		st.tp.inject(req.Header, st.ts)
	}
}

// AppendHeadFields appends the current attempt's traceparent and
// tracestate when they go directly into the request head (h1.HeadFields).
// Their values were formatted here (the traceparent) or parsed and
// formatted by the trace package (the tracestate): no CR or LF.
func (st *reqState) AppendHeadFields(b []byte) []byte {
	if !st.direct {
		return b
	}
	b = append(b, "Traceparent: "...)
	b = append(b, st.tp.b[:]...)
	b = append(b, "\r\n"...)
	if st.ts != "" {
		b = append(b, "Tracestate: "...)
		b = append(b, st.ts...)
		b = append(b, "\r\n"...)
	}
	return b
}

var _ h1.HeadFields = (*reqState)(nil)

// EndAttempt ends the current attempt (gateway.AttemptEnd): the client
// span, if any, and the metrics.
func (st *reqState) EndAttempt(status int, err error) {
	if st.w != nil {
		rec := &st.w.tries[len(st.w.tries)-1]
		rec.end, rec.status, rec.err = time.Since(st.start), status, err
	}
	t := st.t
	outcome := attemptOutcome(status, err)
	if s := st.smp; s != nil {
		switch {
		case s.curSpan != nil:
			t.endClientSpan(s.curSpan, s.out, s.cur, status, err, outcome)
			s.curSpan = nil
		case s.curID.IsValid():
			t.recordClient(s, status, err)
			s.curID = trace.SpanID{}
		}
	}
	if t.inst != nil {
		t.inst.recordAttempt(st.up.Service, st.up.ID, int(st.attempts-1), outcome)
	}
}

// ejected is the gateway's Ejected hook.
func (t *Telemetry) ejected(req *http.Request) {
	if st, ok := req.Context().Value(stateKey{}).(*reqState); ok {
		st.ejected = true
	}
}

func clientSpanName(method string) string {
	if i := methodIndex(method); i != methodOther {
		return methods[i]
	}
	return "HTTP"
}

// instanceAttrs are the client-span attributes that are the same for every
// attempt to one instance, built once per instance.
type instanceAttrs struct {
	kv  []attribute.KeyValue // server.address, server.port, service, instance id
	url string               // "http://<address>": url.full without the path
}

type instKey struct{ service, id, address string }

// instanceAttrs returns u's constant attributes. Keys are discovery
// values (bounded, as the metrics' label sets are).
func (t *Telemetry) instanceAttrs(u *gateway.Upstream) *instanceAttrs {
	return t.insts.get(instKey{u.Service, u.ID, u.Address}, func(k instKey) *instanceAttrs {
		host, port := splitHostPort(k.address)
		return &instanceAttrs{
			kv: []attribute.KeyValue{
				semconv.ServerAddress(host),
				semconv.ServerPort(port),
				AttrService.String(k.service),
				AttrInstanceID.String(k.id),
			},
			url: "http://" + k.address,
		}
	})
}

// clientAttrs appends a client span's attributes to attrs; ia are those of
// a's instance.
func clientAttrs(attrs []attribute.KeyValue, ia *instanceAttrs, req *http.Request, a gateway.Attempt, status int, outcome uint8) []attribute.KeyValue {
	m := methodIndex(req.Method)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(methods[m]))
	if m == methodOther {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
	}
	attrs = append(attrs, ia.kv...)
	attrs = append(attrs,
		// The one string built per sampled attempt: the path varies.
		semconv.URLFull(ia.url+req.URL.EscapedPath()),
		AttrLBPolicy.String(a.Policy),
		AttrWeight.Float64(a.Weight),
		AttrAttempt.Int(a.N),
		AttrHealthy.Int(a.Healthy),
	)
	if a.N > 0 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(a.N))
	}
	if a.Panic {
		// Picked from every instance, healthy or not (panic threshold).
		attrs = append(attrs, AttrPanic.Bool(true))
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	switch {
	case outcome != outcomeOK && outcome != outcome5xx:
		attrs = append(attrs, semconv.ErrorTypeKey.String(outcomes[outcome]))
	case status >= 400:
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
	}
	return attrs
}

// endClientSpan sets the attributes and status of a sampled attempt's
// client span and ends it.
func (t *Telemetry) endClientSpan(span trace.Span, req *http.Request, a gateway.Attempt, status int, err error, outcome uint8) {
	b := t.attrs.get()
	attrs := clientAttrs(*b, t.instanceAttrs(a.Upstream), req, a, status, outcome)
	span.SetAttributes(attrs...)
	t.attrs.put(b, attrs)
	if err != nil {
		span.RecordError(err)
	}
	if code, desc := clientStatus(status, err); code != codes.Unset {
		span.SetStatus(code, desc)
	}
	span.End()
}

// recordClient records the client span of a sampled attempt (the record
// path).
func (t *Telemetry) recordClient(s *sampledPart, status int, err error) {
	b := t.attrs.get()
	r := t.clientRec(s.srv.sc, s.curID, s.out, s.cur, s.curStart, s.curStart.Add(time.Since(s.curStart)), status, err, *b)
	r.pooled = b
	t.record(&r)
}

// attemptOutcome names an attempt's outcome for metrics and spans; errors
// are read by h1.Classify, as the gateway reads them.
func attemptOutcome(status int, err error) uint8 {
	switch h1.Classify(err) {
	case h1.NoFailure:
		if status >= 500 {
			return outcome5xx
		}
		return outcomeOK
	case h1.Canceled:
		return outcomeCanceled
	case h1.DialFailed:
		return outcomeDialError
	case h1.DialTimeout, h1.TimedOut:
		return outcomeTimeout
	}
	return outcomeError
}

// Standard HTTP methods (semantic conventions); anything else is _OTHER.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY", "_OTHER"}

const methodOther = uint8(len(methods) - 1)

func methodIndex(m string) uint8 {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodDelete:
		return 4
	case http.MethodConnect:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodTrace:
		return 7
	case http.MethodPatch:
		return 8
	case "QUERY":
		return 9
	}
	return methodOther
}

func protoVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "1.1"
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	case r.ProtoMajor == 3:
		return "3"
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// splitHostPort splits "host:port"; a missing or bad port is 0.
func splitHostPort(s string) (string, int) {
	if !strings.Contains(s, ":") {
		return s, 0 // without making net.SplitHostPort's error
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
