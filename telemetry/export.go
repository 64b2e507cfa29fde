package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// logEvery bounds how often export trouble is logged: a dead collector is
// worth one line a minute, not one per batch.
const logEvery = time.Minute

// spanCounter accounts for every sampled span from End to export, so that
// drops are counted exactly. The SDK's batch processor drops silently when
// its queue is full; boundedProcessor keeps the number of spans in flight
// (queued, batched or being exported) at most limit, which is the batch
// processor's queue size, so the batch processor itself never drops and
// every drop happens, and is counted, here.
type spanCounter struct {
	limit    int64
	inflight atomic.Int64
	dropped  atomic.Int64
	log      *slog.Logger

	lastLog atomic.Int64 // unix nanos of the last warning
	failing atomic.Bool  // the last export failed
}

func (c *spanCounter) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(logEvery) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn(msg, append(args, "dropped_total", c.dropped.Load())...)
}

// admit takes a place in flight for one span, or, when limit spans are in
// flight already, counts it dropped and reports false.
func (c *spanCounter) admit() bool {
	if c.inflight.Add(1) > c.limit {
		c.inflight.Add(-1)
		c.dropped.Add(1)
		c.warn("telemetry: span queue full, dropping spans (is the collector slow or down?)")
		return false
	}
	return true
}

// boundedProcessor drops (and counts) a sampled span instead of queueing it
// when limit spans are already in flight, and hands the others to the batch
// processor in bursts. OnEnd never blocks.
//
// The bursts matter at low sampling rates: the batch processor's goroutine
// wakes up for every span it receives, and waking a parked goroutine (and
// often an OS thread) costs far more CPU than the span itself. Spans wait
// here at most handoffDelay, or until handoffBatch of them are ready.
type boundedProcessor struct {
	next sdktrace.SpanProcessor // the batch span processor
	c    *spanCounter

	mu    sync.Mutex
	buf   []sdktrace.ReadOnlySpan
	timer *time.Timer // armed while buf is not empty
}

const (
	handoffDelay = 200 * time.Millisecond
	handoffBatch = 128
)

func newBoundedProcessor(next sdktrace.SpanProcessor, c *spanCounter) *boundedProcessor {
	p := &boundedProcessor{next: next, c: c}
	p.timer = time.AfterFunc(time.Hour, p.handoff)
	p.timer.Stop()
	return p
}

func (p *boundedProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	p.next.OnStart(parent, s)
}

func (p *boundedProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if !p.c.admit() {
		return
	}
	p.mu.Lock()
	p.buf = append(p.buf, s)
	if len(p.buf) == 1 {
		p.timer.Reset(handoffDelay)
	}
	if len(p.buf) < handoffBatch {
		p.mu.Unlock()
		return
	}
	spans := p.buf
	p.buf = nil
	p.timer.Stop()
	p.mu.Unlock()
	p.send(spans)
}

// handoff passes every waiting span to the batch processor.
func (p *boundedProcessor) handoff() {
	p.mu.Lock()
	spans := p.buf
	p.buf = nil
	p.timer.Stop()
	p.mu.Unlock()
	p.send(spans)
}

func (p *boundedProcessor) send(spans []sdktrace.ReadOnlySpan) {
	for _, s := range spans {
		p.next.OnEnd(s) // never drops: at most limit spans are in flight
	}
}

func (p *boundedProcessor) ForceFlush(ctx context.Context) error {
	p.handoff()
	return p.next.ForceFlush(ctx)
}

func (p *boundedProcessor) Shutdown(ctx context.Context) error {
	p.handoff()
	return p.next.Shutdown(ctx)
}

// countingExporter releases exported spans from the in-flight count and
// counts a failed batch as dropped. It logs failures at most once a minute
// and does not return them, so the SDK's global error handler does not
// print one line per batch.
type countingExporter struct {
	sdktrace.SpanExporter
	c *spanCounter
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.c.exported(len(spans), e.SpanExporter.ExportSpans(ctx, spans))
	return nil
}

// exported releases n exported spans from the in-flight count and counts
// them as dropped if err says the export failed, logging failures at most
// once a minute.
func (c *spanCounter) exported(n int, err error) {
	c.inflight.Add(-int64(n))
	if err != nil {
		c.dropped.Add(int64(n))
		c.failing.Store(true)
		c.warn("telemetry: exporting spans failed, spans dropped", "error", err)
		return
	}
	if c.failing.CompareAndSwap(true, false) {
		c.log.Info("telemetry: exporting spans again", "dropped_total", c.dropped.Load())
	}
}

// quietMetricExporter logs OTLP metric export failures at most once a
// minute instead of handing each to the global error handler.
type quietMetricExporter struct {
	sdkmetric.Exporter
	log     *slog.Logger
	lastLog atomic.Int64
}

func (e *quietMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.Exporter.Export(ctx, rm)
	if err != nil {
		now := time.Now().UnixNano()
		if last := e.lastLog.Load(); now-last >= int64(logEvery) && e.lastLog.CompareAndSwap(last, now) {
			e.log.Warn("telemetry: exporting metrics failed", "error", err)
		}
	}
	return nil
}
