package telemetry

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
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
	if t.tp == nil && t.inst == nil && t.access == nil {
		return gateway.Hooks{}
	}
	return gateway.Hooks{Request: t.request, Attempt: t.attempt}
}

// reqState is what telemetry knows about one request that is sampled or
// access-logged (other requests need none). It is created by the Request
// hook and used by the Attempt hook and the end func, which the gateway
// calls in that order from the request's goroutine: no locking.
type reqState struct {
	t        *Telemetry
	ctx      context.Context // the context handed back to the gateway
	r        *http.Request   // the incoming request
	start    time.Time
	route    string
	service  string
	method   uint8
	span     trace.Span // nil when tracing is off
	instance string     // the instance of the latest attempt
	attempts int
}

type stateKey struct{}

// request is the gateway's Request hook.
func (t *Telemetry) request(r *http.Request, route, service string) (context.Context, func(int)) {
	// The closures below capture only variables that are never assigned
	// again, so each holds copies: one allocation, not one per variable.
	start, method := time.Now(), methodIndex(r.Method)
	if t.tp == nil && t.access == nil {
		// Metrics only: no per-request state, one closure.
		ctx := r.Context()
		return ctx, func(status int) {
			t.inst.recordRequest(ctx, route, service, method, statusClass(status), time.Since(start).Seconds())
		}
	}
	ctx, span := r.Context(), trace.Span(nil) // span nil: tracing off
	if t.tp != nil {
		sctx, s := t.startServer(ctx, r, method, route)
		if t.access == nil && !s.IsRecording() {
			// Unsampled, no access log: nothing for the Attempt hook to
			// fill in, so one closure and no state.
			return sctx, func(status int) {
				elapsed := time.Since(start)
				s.End()
				if t.inst != nil {
					t.inst.recordRequest(sctx, route, service, method, statusClass(status), elapsed.Seconds())
				}
			}
		}
		ctx, span = sctx, s
	}
	// Sampled, or the access log is on: the Attempt hook fills in the
	// state for the server span's attributes and for the access log.
	st := &reqState{t: t, r: r, start: start, route: route, service: service, method: method, span: span}
	st.ctx = context.WithValue(ctx, stateKey{}, st)
	return st.ctx, st.end
}

// startServer continues (or, untrusted, links) the incoming trace and
// starts the server span.
func (t *Telemetry) startServer(ctx context.Context, r *http.Request, method uint8, route string) (context.Context, trace.Span) {
	o := t.serverOpts
	if t.set.trustParent {
		ctx = t.prop.Extract(ctx, headerCarrier(r.Header))
	} else {
		o = t.newRootOpts
		if len(r.Header["Traceparent"]) > 0 {
			in := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, headerCarrier(r.Header)))
			if in.IsValid() {
				o = append(o[:len(o):len(o)], trace.WithLinks(trace.Link{SpanContext: in}))
			}
		}
	}
	// Attributes are set once, at the end: one call into the span instead
	// of two, and none for a span that is not sampled.
	return t.tracer.Start(ctx, t.serverSpanName(method, route), o...)
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
	a = append(a, AttrAttempts.Int(st.attempts))
	if status > 0 {
		a = append(a, semconv.HTTPResponseStatusCode(status))
	}
	if status >= 500 {
		a = append(a, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
	}
	return a
}

// end is the func the Request hook returns; status 0 means the client went
// away before a status was written.
func (st *reqState) end(status int) {
	t := st.t
	elapsed := time.Since(st.start)
	if st.span != nil {
		if st.span.IsRecording() {
			b := t.attrs.get()
			a := serverAttrs(*b, st.r, st, status)
			st.span.SetAttributes(a...)
			t.attrs.put(b, a)
			if status >= 500 {
				st.span.SetStatus(codes.Error, "")
			}
		}
		st.span.End()
	}
	if t.inst != nil {
		t.inst.recordRequest(st.ctx, st.route, st.service, st.method, statusClass(status), elapsed.Seconds())
	}
	if t.access != nil {
		t.logAccess(st, status, elapsed)
	}
}

// attempt is the gateway's Attempt hook: it starts the client span and
// injects its context into the outgoing headers, replacing what an earlier
// attempt of the same request injected.
func (t *Telemetry) attempt(req *http.Request, a gateway.Attempt) func(int, error) {
	ctx := req.Context()
	recording := t.tp != nil && trace.SpanFromContext(ctx).IsRecording()
	if recording || t.access != nil {
		if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
			st.attempts = a.N + 1
			st.instance = a.Upstream.ID
		}
	}
	var span trace.Span // nil: no client span
	if t.tp != nil {
		sctx := ctx
		// An unsampled request gets no client spans (they would not be
		// sampled either): the server span's context travels upstream,
		// carrying the decision, at the cost of an injection only.
		if recording {
			sctx, span = t.tracer.Start(ctx, clientSpanName(req.Method), t.clientOpts...)
		}
		// An untrusted or earlier tracestate must not travel with our
		// traceparent; the propagator sets it again from the span.
		// The key is canonical already: no Header.Del.
		delete(req.Header, "Tracestate")
		t.prop.Inject(sctx, headerCarrier(req.Header))
	}
	return func(status int, err error) { t.attemptDone(req, a, span, status, err) }
}

func clientSpanName(method string) string {
	if i := methodIndex(method); i != methodOther {
		return methods[i]
	}
	return "HTTP"
}

// clientAttrs appends a client span's attributes to attrs.
func clientAttrs(attrs []attribute.KeyValue, req *http.Request, a gateway.Attempt, status int, outcome uint8) []attribute.KeyValue {
	m := methodIndex(req.Method)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(methods[m]))
	if m == methodOther {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
	}
	host, port := splitHostPort(a.Upstream.Address)
	attrs = append(attrs,
		semconv.ServerAddress(host),
		semconv.ServerPort(port),
		semconv.URLFull("http://"+a.Upstream.Address+req.URL.EscapedPath()),
		AttrService.String(a.Upstream.Service),
		AttrInstanceID.String(a.Upstream.ID),
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

// attemptDone ends an attempt: the client span, if any, and the metrics.
func (t *Telemetry) attemptDone(req *http.Request, a gateway.Attempt, span trace.Span, status int, err error) {
	outcome := attemptOutcome(status, err)
	if span != nil {
		b := t.attrs.get()
		attrs := clientAttrs(*b, req, a, status, outcome)
		span.SetAttributes(attrs...)
		t.attrs.put(b, attrs)
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case status >= 400:
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
	if t.inst != nil {
		t.inst.recordAttempt(a.Upstream.Service, a.Upstream.ID, a.N, outcome)
	}
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
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
