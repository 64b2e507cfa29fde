package discovery

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// ConsulEvent is one timed step of the Consul source, for benchmarks that
// break a change's latency down (bench/scale): a detector answer whose
// index moved, a full read of a service, or a published snapshot.
type ConsulEvent struct {
	// Kind is "summary", "catalog" or "checks" for a detector answer
	// (the catalog detector on the per-service summary or on
	// /v1/catalog/services), "fetch" for a full read of a service (a
	// targeted fetch, or a sweep's probe whose index moved), "publish"
	// for a snapshot handed to the caller.
	Kind string
	// Names are the services a detector answer named (appeared, left,
	// tags, instances or checks moved), or the service fetched.
	Names []string
	// Dispatched is when the run loop handed a fetch to a worker.
	Dispatched time.Time
	// Start is when the request was sent; Headers when the agent's answer
	// began (its first byte: the agent's work, and for a blocking query
	// its wait, lie between the two); Decoded when the body was read and
	// decoded. Publish events have only Start and Acted.
	Start, Headers, Decoded time.Time
	// Acted is when the run loop had acted on it: queued the fetches a
	// detector answer asks for, applied a fetch, returned from the
	// caller's update.
	Acted time.Time
}

// reqTiming records when one request was sent and when its answer began.
type reqTiming struct {
	start   time.Time
	headers atomic.Int64 // UnixNano of the first response byte; 0: none
	decoded time.Time
}

// timeRequest returns ctx with a trace that records the first response
// byte into a new reqTiming, or ctx and nil when the source is not traced.
func (c *Consul) timeRequest(ctx context.Context) (context.Context, *reqTiming) {
	if c.opt.Trace == nil {
		return ctx, nil
	}
	t := &reqTiming{start: time.Now()}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotFirstResponseByte: func() { t.headers.Store(time.Now().UnixNano()) },
	})
	return ctx, t
}

// done marks the body decoded.
func (t *reqTiming) done() {
	if t != nil {
		t.decoded = time.Now()
	}
}

// event fills the request's times into an event of kind.
func (t *reqTiming) event(kind string, names []string) ConsulEvent {
	ev := ConsulEvent{Kind: kind, Names: names, Start: t.start, Decoded: t.decoded}
	if h := t.headers.Load(); h != 0 {
		ev.Headers = time.Unix(0, h)
	}
	return ev
}

// trace hands ev to the caller's Trace, if any, stamped with the time the
// loop acted on it.
func (c *Consul) trace(t *reqTiming, kind string, names []string, dispatched time.Time) {
	if c.opt.Trace == nil || t == nil {
		return
	}
	ev := t.event(kind, names)
	ev.Dispatched, ev.Acted = dispatched, time.Now()
	c.opt.Trace(ev)
}
