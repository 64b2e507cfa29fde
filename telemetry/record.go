package telemetry

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard-gw/switchyard/gateway"
)

// The record path. With the direct exporter (telemetry.span_exporter:
// direct) a sampled request makes no SDK span objects: it keeps what its
// spans need in its own state (sampledPart) and, as each span ends, hands
// a spanRec to the recent-traces ring and to a recordQueue, which encodes
// it into the batch being filled; a worker sends the batches with the
// direct exporter. The records carry what the SDK's spans would: the same ids,
// flags, trace state, parent, links, attributes (the same builders),
// status and error event, with the SDK tracer provider's resource and
// the same instrumentation scope. With the sdk exporter, spans go
// through the SDK as before.

// spanRec is one ended span, as the OTLP encoder writes it and the
// recent-traces ring files it. The record path fills it from a request's
// state; the encoder fills one from each sdktrace.ReadOnlySpan it is
// given.
type spanRec struct {
	sc     trace.SpanContext
	parent trace.SpanContext // invalid: a root
	kind   trace.SpanKind
	name   string
	start  time.Time
	end    time.Time
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	links  []sdktrace.Link
	status codes.Code
	desc   string // the status description (Error only)

	droppedAttrs, droppedEvents, droppedLinks int

	pooled *[]attribute.KeyValue // attrs' slot in the attrPool; nil: not pooled
}

// fill sets r from an SDK span; attrs, events and links are the span's.
func (r *spanRec) fill(s sdktrace.ReadOnlySpan) {
	st := s.Status()
	*r = spanRec{
		sc: s.SpanContext(), parent: s.Parent(), kind: s.SpanKind(), name: s.Name(),
		start: s.StartTime(), end: s.EndTime(),
		attrs: s.Attributes(), events: s.Events(), links: s.Links(),
		status: st.Code, desc: st.Description,
		droppedAttrs: s.DroppedAttributes(), droppedEvents: s.DroppedEvents(), droppedLinks: s.DroppedLinks(),
	}
}

// ctxSpan is the span that a recorded request's context carries: not
// recording, its span context that of the server span, so that whatever
// reads trace.SpanFromContext or SpanContextFromContext sees the ids the
// SDK's span would have had.
type ctxSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s *ctxSpan) SpanContext() trace.SpanContext { return s.sc }

// serverStatus is the status of a server span that answered status.
func serverStatus(status int) (codes.Code, string) {
	if status >= 500 {
		return codes.Error, ""
	}
	return codes.Unset, ""
}

// clientStatus is the status of a client span whose attempt ended with
// status or err.
func clientStatus(status int, err error) (codes.Code, string) {
	switch {
	case err != nil:
		return codes.Error, err.Error()
	case status >= 400:
		return codes.Error, ""
	}
	return codes.Unset, ""
}

// errorEvents is the event that the SDK's RecordError adds for err at.
func errorEvents(err error, at time.Time) []sdktrace.Event {
	return []sdktrace.Event{{Name: semconv.ExceptionEventName, Time: at, Attributes: []attribute.KeyValue{
		semconv.ExceptionType(errorType(err)),
		semconv.ExceptionMessage(err.Error()),
	}}}
}

// errorType names err's dynamic type as the SDK's RecordError does:
// "<package path>.<name>" for a named type, the type's string otherwise
// (pointers: "*net.OpError").
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// spanContext is the span context of a span with ids tid and sid under a
// parent with flags and state ts, as the SDK makes it for a sampled span.
func spanContext(tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags, ts trace.TraceState) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags | trace.FlagsSampled, TraceState: ts})
}

// serverRec is the record of st's server span with context sc, under
// parent (invalid: a root) or linked to link, that answered status at
// end; its attributes are appended to buf.
func (t *Telemetry) serverRec(st *reqState, sc, parent, link trace.SpanContext, end time.Time, status int, buf []attribute.KeyValue) spanRec {
	r := spanRec{sc: sc, parent: parent, kind: trace.SpanKindServer, name: t.serverSpanName(st.method, st.route),
		start: st.start, end: end, attrs: serverAttrs(buf, st.r, st, status)}
	r.status, r.desc = serverStatus(status)
	if link.IsValid() {
		r.links = []sdktrace.Link{{SpanContext: link}}
	}
	return r
}

// clientRec is the record of the client span with id under the server
// span server, for attempt a of out, from start to end with status or
// err; its attributes are appended to buf.
func (t *Telemetry) clientRec(server trace.SpanContext, id trace.SpanID, out *http.Request, a gateway.Attempt, start, end time.Time, status int, err error, buf []attribute.KeyValue) spanRec {
	r := spanRec{sc: spanContext(server.TraceID(), id, server.TraceFlags(), server.TraceState()), parent: server,
		kind: trace.SpanKindClient, name: clientSpanName(out.Method), start: start, end: end,
		attrs: clientAttrs(buf, t.instanceAttrs(a.Upstream), out, a, status, attemptOutcome(status, err))}
	r.status, r.desc = clientStatus(status, err)
	if err != nil {
		r.events = errorEvents(err, end)
	}
	return r
}

// record files an ended span with the recent-traces ring and queues it
// for export. r's attributes go back to the pool.
func (t *Telemetry) record(r *spanRec) {
	t.recent.record(r)
	t.rq.add(r)
}

// recordQueue holds ended spans for export, at most as many (queued or
// being exported) as the span counter's limit: past that it drops and
// counts, and never blocks. A span is encoded as it is queued, into the
// batch being filled: what waits for export is bytes, which the garbage
// collector does not scan, not records that point to attributes. A
// worker goroutine exports a batch when batchSize spans are queued or
// delay after the last export, as the SDK's batch span processor does,
// and on ForceFlush and Shutdown.
type recordQueue struct {
	c     *spanCounter
	exp   *directExporter
	res   *resource.Resource
	scope instrumentation.Scope
	pool  *attrPool

	batchSize int
	delay     time.Duration
	timeout   time.Duration // of one export

	mu      sync.Mutex
	cur     spanBatch   // the batch being filled
	ready   []spanBatch // full batches waiting for the worker
	free    [][]byte    // buffers of exported batches, for reuse
	stopped bool

	ctx    context.Context // the worker's exports'; cancelled when shutdown gives up
	cancel context.CancelFunc

	kick    chan struct{}      // a batch is ready (buffered: one wake-up pending at most)
	flushes chan chan struct{} // ForceFlush: export what is queued, then close
	stop    chan struct{}
	done    chan struct{} // closed when the worker returned
}

// spanBatch is n encoded spans, each a ScopeSpans.spans field.
type spanBatch struct {
	b []byte
	n int
}

// Batch settings of the SDK's batch span processor, whose OTEL_BSP_*
// variables the record queue honours the same way.
const (
	defaultScheduleDelay  = 5 * time.Second
	defaultExportTimeout  = 30 * time.Second
	defaultMaxExportBatch = 512
)

func newRecordQueue(c *spanCounter, exp *directExporter, res *resource.Resource, pool *attrPool, getenv func(string) string, batchTimeout time.Duration) *recordQueue {
	ms := func(name string, def time.Duration) time.Duration {
		if n, err := strconv.Atoi(strings.TrimSpace(getenv(name))); err == nil && n > 0 {
			return time.Duration(n) * time.Millisecond
		}
		return def
	}
	q := &recordQueue{
		c: c, exp: exp, res: res, pool: pool,
		scope:     instrumentation.Scope{Name: ScopeName, SchemaURL: semconv.SchemaURL},
		batchSize: defaultMaxExportBatch,
		delay:     ms("OTEL_BSP_SCHEDULE_DELAY", defaultScheduleDelay),
		timeout:   ms("OTEL_BSP_EXPORT_TIMEOUT", defaultExportTimeout),
		kick:      make(chan struct{}, 1),
		flushes:   make(chan chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if n, err := strconv.Atoi(strings.TrimSpace(getenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"))); err == nil && n > 0 {
		q.batchSize = n
	}
	q.batchSize = min(q.batchSize, int(c.limit))
	if batchTimeout > 0 {
		q.delay = batchTimeout
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q
}

// add encodes r into the batch being filled, or drops it (counted) when
// the queue is full; either way r's attributes go back to the pool.
func (q *recordQueue) add(r *spanRec) {
	defer q.release(r)
	if !q.c.admit() {
		return
	}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		q.c.inflight.Add(-1)
		return
	}
	b, m := openMsg(q.cur.b, ssSpans)
	q.cur.b = closeMsg(appendSpan(b, r), m)
	q.cur.n++
	full := q.cur.n == q.batchSize
	if full {
		q.ready = append(q.ready, q.cur)
		q.cur = spanBatch{}
		if n := len(q.free); n > 0 {
			q.cur.b, q.free = q.free[n-1], q.free[:n-1]
		}
	}
	q.mu.Unlock()
	if full {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// release returns r's attributes to the pool.
func (q *recordQueue) release(r *spanRec) {
	if r.pooled != nil {
		q.pool.put(r.pooled, r.attrs)
	}
}

func (q *recordQueue) run() {
	defer close(q.done)
	timer := time.NewTimer(q.delay)
	defer timer.Stop()
	for {
		var ack chan struct{}
		select {
		case <-q.kick:
		case <-timer.C:
		case ack = <-q.flushes:
		case <-q.stop:
			return
		}
		q.exportQueued(q.ctx)
		if ack != nil {
			close(ack)
		}
		timer.Reset(q.delay)
	}
}

// exportQueued exports every queued span: the full batches, then the one
// being filled.
func (q *recordQueue) exportQueued(ctx context.Context) {
	q.mu.Lock()
	batches := q.ready
	q.ready = nil
	if q.cur.n > 0 {
		batches = append(batches, q.cur)
		q.cur = spanBatch{}
	}
	q.mu.Unlock()
	for _, bt := range batches {
		bctx, cancel := context.WithTimeout(ctx, q.timeout)
		err := q.exp.exportSpans(bctx, q.res, q.scope, bt.b)
		cancel()
		q.c.exported(bt.n, err)
	}
	q.mu.Lock()
	for _, bt := range batches {
		if len(q.free) < 4 {
			q.free = append(q.free, bt.b[:0])
		}
	}
	if q.cur.b == nil && len(q.free) > 0 {
		n := len(q.free)
		q.cur.b, q.free = q.free[n-1], q.free[:n-1]
	}
	q.mu.Unlock()
}

// forceFlush exports every span queued so far.
func (q *recordQueue) forceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flushes <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shutdown stops the worker, exports what is queued and closes the
// exporter.
func (q *recordQueue) shutdown(ctx context.Context) error {
	q.mu.Lock()
	already := q.stopped
	q.stopped = true
	q.mu.Unlock()
	if already {
		return nil
	}
	close(q.stop)
	select {
	case <-q.done:
		q.exportQueued(ctx)
	case <-ctx.Done():
		q.cancel() // the export under way gives up
		<-q.done
	}
	q.cancel()
	return errors.Join(ctx.Err(), q.exp.Shutdown(ctx))
}
