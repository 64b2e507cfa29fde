package telemetry

import (
	"context"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Metric names. Every label value comes from configuration or discovery
// (route, service, instance, provider) or from a small fixed set (method,
// status class, outcome, result): never from raw paths, unknown methods or
// other client input.
const (
	MetricRequests        = "switchyard.requests"
	MetricRequestDuration = "switchyard.request.duration"
	MetricAttempts        = "switchyard.upstream.attempts"
	MetricRetries         = "switchyard.upstream.retries"
	MetricHealthy         = "switchyard.upstream.healthy_instances"
	MetricRoutable        = "switchyard.instance.routable"
	MetricProbeDuration   = "switchyard.health.probe.duration"
	MetricTransitions     = "switchyard.health.transitions"
	MetricDiscoverySucc   = "switchyard.discovery.last_success"
	MetricDiscoveryErrors = "switchyard.discovery.errors"
	MetricDiscoveryUpd    = "switchyard.discovery.updates"
	MetricDroppedSpans    = "switchyard.telemetry.spans.dropped"
)

// durationBuckets are the HTTP semantic-convention buckets, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// durationBucketsNS are durationBuckets in nanoseconds.
var durationBucketsNS = func() []int64 {
	ns := make([]int64, len(durationBuckets))
	for i, b := range durationBuckets {
		ns[i] = int64(math.Round(b * 1e9))
	}
	return ns
}()

const requestDurationDesc = "Time from routing to the end of the response, by route, service, method and status class."

// instruments holds every instrument and the cached attribute sets that
// let the request path record without allocating. The per-request counters
// (requests, attempts, retries) are kept here as atomic counts per label
// set and observed when metrics are collected: recording them through the
// SDK on every request costs it an attribute-set check each time. The
// request-duration histogram is kept the same way and handed to the SDK's
// readers by produceDurations (the metrics API has no observable histogram).
type instruments struct {
	meter       metric.Meter
	start       time.Time // start of the cumulative request-duration series
	requests    metric.Int64ObservableCounter
	attempts    metric.Int64ObservableCounter
	retries     metric.Int64ObservableCounter
	probe       metric.Float64Histogram
	transitions metric.Int64Counter

	reqSets     cowMap[reqKey, *reqOpts]
	attemptSets cowMap[attemptKey, *count]
	retrySets   cowMap[string, *count]
	probeSets   cowMap[probeKey, []metric.RecordOption]
}

// count is a counter's value for one label set.
type count struct {
	n   atomic.Int64
	set metric.ObserveOption
}

func newCount(set attribute.Set) *count { return &count{set: metric.WithAttributeSet(set)} }

func newInstruments(m metric.Meter) (*instruments, error) {
	in := &instruments{meter: m, start: time.Now()}
	var err error
	if in.requests, err = m.Int64ObservableCounter(MetricRequests,
		metric.WithDescription("Requests answered, by route, service, method and status class."),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if in.attempts, err = m.Int64ObservableCounter(MetricAttempts,
		metric.WithDescription("Upstream attempts, by service, instance and outcome."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, err
	}
	if in.retries, err = m.Int64ObservableCounter(MetricRetries,
		metric.WithDescription("Upstream attempts after the first one of a request, by service."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, err
	}
	if in.probe, err = m.Float64Histogram(MetricProbeDuration,
		metric.WithDescription("Health probe latency, by service, instance and result."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if in.transitions, err = m.Int64Counter(MetricTransitions,
		metric.WithDescription("Instances entering (state=routable) or leaving (state=unroutable) rotation."),
		metric.WithUnit("{transition}")); err != nil {
		return nil, err
	}
	if _, err = m.RegisterCallback(in.observeCounts, in.requests, in.attempts, in.retries); err != nil {
		return nil, err
	}
	return in, nil
}

// Status classes of the requests metric. Status 0 (the client went away
// before a status was written) is "canceled".
var statusClasses = [...]string{"canceled", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func statusClass(status int) uint8 {
	switch {
	case status == 0:
		return 0
	case status >= 100 && status < 600:
		return uint8(status / 100)
	default:
		return 6
	}
}

type reqKey struct {
	route, service string
	method         uint8
	class          uint8
}

// reqOpts holds one label set's request count and duration histogram.
type reqOpts struct {
	count
	attrs attribute.Set
	hist  durationHist
}

// durationHist is an explicit-bucket histogram of durationBucketsNS kept
// with atomics. Its count is the sum of the buckets, so a collection
// running alongside a record never sees them disagree.
type durationHist struct {
	buckets  [15]atomic.Uint64 // len(durationBuckets)+1, the last one unbounded
	sum      atomic.Int64      // nanoseconds
	min, max atomic.Int64      // nanoseconds; valid once a bucket is non-zero
}

func newReqOpts(set attribute.Set) *reqOpts {
	o := &reqOpts{attrs: set}
	o.set = metric.WithAttributeSet(set)
	o.hist.min.Store(math.MaxInt64)
	o.hist.max.Store(math.MinInt64)
	return o
}

func (h *durationHist) record(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(durationBucketsNS) && ns > durationBucketsNS[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(ns)
	for v := h.min.Load(); ns < v && !h.min.CompareAndSwap(v, ns); v = h.min.Load() {
	}
	for v := h.max.Load(); ns > v && !h.max.CompareAndSwap(v, ns); v = h.max.Load() {
	}
}

// point returns the histogram as the SDK would aggregate it; ok is false
// while nothing was recorded.
func (h *durationHist) point(attrs attribute.Set, start, now time.Time) (p metricdata.HistogramDataPoint[float64], ok bool) {
	counts := make([]uint64, len(h.buckets))
	var n uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return p, false
	}
	return metricdata.HistogramDataPoint[float64]{
		Attributes:   attrs,
		StartTime:    start,
		Time:         now,
		Count:        n,
		Bounds:       durationBuckets,
		BucketCounts: counts,
		Min:          metricdata.NewExtrema(time.Duration(h.min.Load()).Seconds()),
		Max:          metricdata.NewExtrema(time.Duration(h.max.Load()).Seconds()),
		Sum:          time.Duration(h.sum.Load()).Seconds(),
	}, true
}

// recordRequest counts one finished request. Allocation-free once the
// label combination was seen.
func (in *instruments) recordRequest(route, service string, method, class uint8, d time.Duration) {
	o := in.reqSets.get(reqKey{route, service, method, class}, func(k reqKey) *reqOpts {
		return newReqOpts(attribute.NewSet(
			attribute.String("route", k.route),
			attribute.String("service", k.service),
			attribute.String("method", methods[k.method]),
			attribute.String("status_class", statusClasses[k.class]),
		))
	})
	o.n.Add(1)
	o.hist.record(d)
}

// produceDurations returns the request-duration histogram in the
// instruments' scope, cumulative, as the SDK's Float64Histogram reported
// it.
func (in *instruments) produceDurations() metricdata.ScopeMetrics {
	now := time.Now()
	var pts []metricdata.HistogramDataPoint[float64]
	in.reqSets.each(func(v *reqOpts) {
		if p, ok := v.hist.point(v.attrs, in.start, now); ok {
			pts = append(pts, p)
		}
	})
	return metricdata.ScopeMetrics{
		Scope: instrumentation.Scope{Name: ScopeName, SchemaURL: semconv.SchemaURL},
		Metrics: []metricdata.Metrics{{
			Name:        MetricRequestDuration,
			Description: requestDurationDesc,
			Unit:        "s",
			Data: metricdata.Histogram[float64]{
				DataPoints:  pts,
				Temporality: metricdata.CumulativeTemporality,
			},
		}},
	}
}

// durationProducer hands the request-duration histogram to a reader
// (sdkmetric.Producer); it produces nothing until the instruments exist.
type durationProducer struct{ in atomic.Pointer[instruments] }

func (p *durationProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	in := p.in.Load()
	if in == nil {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{in.produceDurations()}, nil
}

// Attempt outcomes.
const (
	outcomeOK        uint8 = iota // a response below 500
	outcome5xx                    // the instance answered 5xx
	outcomeDialError              // connecting failed, nothing was sent
	outcomeTimeout
	outcomeCanceled // the client went away
	outcomeError    // any other transport error
)

var outcomes = [...]string{"ok", "5xx", "dial_error", "timeout", "canceled", "error"}

type attemptKey struct {
	service, instance string
	outcome           uint8
}

func (in *instruments) recordAttempt(service, instance string, n int, outcome uint8) {
	in.attemptSets.get(attemptKey{service, instance, outcome}, func(k attemptKey) *count {
		return newCount(attribute.NewSet(
			attribute.String("service", k.service),
			attribute.String("instance", k.instance),
			attribute.String("outcome", outcomes[k.outcome]),
		))
	}).n.Add(1)
	if n > 0 {
		in.retrySets.get(service, func(s string) *count {
			return newCount(attribute.NewSet(attribute.String("service", s)))
		}).n.Add(1)
	}
}

// observeCounts reports the per-request counters when metrics are
// collected.
func (in *instruments) observeCounts(_ context.Context, o metric.Observer) error {
	in.reqSets.each(func(v *reqOpts) { o.ObserveInt64(in.requests, v.n.Load(), v.set) })
	in.attemptSets.each(func(v *count) { o.ObserveInt64(in.attempts, v.n.Load(), v.set) })
	in.retrySets.each(func(v *count) { o.ObserveInt64(in.retries, v.n.Load(), v.set) })
	return nil
}

// observeDroppedSpans exports the dropped-span count.
func (in *instruments) observeDroppedSpans(c *spanCounter) error {
	_, err := in.meter.Int64ObservableCounter(MetricDroppedSpans,
		metric.WithDescription("Spans dropped because the export queue was full or the export failed."),
		metric.WithUnit("{span}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(c.dropped.Load())
			return nil
		}))
	return err
}

// cowMap is a copy-on-write map: lock-free reads, writes under a mutex.
// New entries wait in a dirty map (read under the mutex) and are published
// in one copy once they are as many as the published ones, or once they
// were read, under the mutex, as often as a copy costs: each entry is
// copied a bounded number of times on average however many there are
// (20,000 instances need not mean 20,000 copies of a growing map), and a
// hot new entry reaches the lock-free path soon. Keys are bounded
// (configuration and discovery values), so entries are never removed.
type cowMap[K comparable, V any] struct {
	m      atomic.Pointer[map[K]V] // published; never modified
	mu     sync.Mutex
	dirty  map[K]V // not yet published; guarded by mu
	misses int     // reads of dirty entries since the last publication
}

// each calls f with every value.
func (c *cowMap[K, V]) each(f func(V)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.m.Load(); m != nil {
		for _, v := range *m {
			f(v)
		}
	}
	for _, v := range c.dirty {
		f(v)
	}
}

func (c *cowMap[K, V]) get(k K, newV func(K) V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	v, ok := c.dirty[k]
	if ok {
		c.misses++
	} else {
		v = newV(k)
		if c.dirty == nil {
			c.dirty = map[K]V{}
		}
		c.dirty[k] = v
	}
	if old == nil || len(c.dirty) >= len(*old) || c.misses >= len(*old)+len(c.dirty) {
		next := c.dirty
		if old != nil {
			next = maps.Clone(*old)
			maps.Copy(next, c.dirty)
		}
		c.m.Store(&next)
		c.dirty, c.misses = nil, 0
	}
	return v
}
