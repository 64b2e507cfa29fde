package telemetry

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newDurationTest returns instruments whose request-duration histogram
// reaches reader through prod, as in a running gateway; mp is shut down
// when the test ends.
func newDurationTest(t *testing.T) (*durationProducer, *sdkmetric.ManualReader, *sdkmetric.MeterProvider, *instruments) {
	t.Helper()
	prod := &durationProducer{}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(prod))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	in, err := newInstruments(mp.Meter(ScopeName))
	if err != nil {
		t.Fatal(err)
	}
	prod.in.Store(in)
	return prod, reader, mp, in
}

// The request-duration histogram kept by the instruments must read as the
// SDK's Float64Histogram with the same buckets reads, fed the same values.
func TestRequestDurationMatchesSDKHistogram(t *testing.T) {
	_, reader, mp, in := newDurationTest(t)
	ref, err := mp.Meter("reference").Float64Histogram(MetricRequestDuration,
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		t.Fatal(err)
	}
	values := []time.Duration{0, time.Microsecond, 5 * time.Millisecond, 5*time.Millisecond + 1, 42 * time.Millisecond,
		100 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, 11 * time.Second, time.Minute}
	for i, d := range values {
		class := uint8(2 + i%2)
		in.recordRequest("/api", "web", 0, class, d)
		ref.Record(context.Background(), d.Seconds(), metric.WithAttributes(
			attribute.String("route", "/api"), attribute.String("service", "web"),
			attribute.String("method", methods[0]), attribute.String("status_class", statusClasses[class])))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var got, want *metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for i, m := range sm.Metrics {
			if m.Name != MetricRequestDuration {
				continue
			}
			if sm.Scope.Name == "reference" {
				want = &sm.Metrics[i]
			} else if sm.Scope.Name == ScopeName {
				got = &sm.Metrics[i]
			}
		}
	}
	if got == nil || want == nil {
		t.Fatalf("missing histogram: got %v, want %v", got, want)
	}
	if got.Unit != "s" || got.Description != requestDurationDesc {
		t.Errorf("unit %q, description %q", got.Unit, got.Description)
	}
	gh, wh := got.Data.(metricdata.Histogram[float64]), want.Data.(metricdata.Histogram[float64])
	if gh.Temporality != metricdata.CumulativeTemporality || len(gh.DataPoints) != len(wh.DataPoints) || len(gh.DataPoints) != 2 {
		t.Fatalf("temporality %v, %d points, want %d", gh.Temporality, len(gh.DataPoints), len(wh.DataPoints))
	}
	for _, w := range wh.DataPoints {
		found := false
		for _, g := range gh.DataPoints {
			if !g.Attributes.Equals(&w.Attributes) {
				continue
			}
			found = true
			gmin, _ := g.Min.Value()
			wmin, _ := w.Min.Value()
			gmax, _ := g.Max.Value()
			wmax, _ := w.Max.Value()
			if fmt.Sprint(g.Bounds, g.BucketCounts, g.Count, gmin, gmax) != fmt.Sprint(w.Bounds, w.BucketCounts, w.Count, wmin, wmax) ||
				math.Abs(g.Sum-w.Sum) > 1e-9 {
				t.Errorf("%v:\n got %v %v n=%d sum=%v min=%v max=%v\nwant %v %v n=%d sum=%v min=%v max=%v", w.Attributes.Encoded(attribute.DefaultEncoder()),
					g.Bounds, g.BucketCounts, g.Count, g.Sum, gmin, gmax, w.Bounds, w.BucketCounts, w.Count, w.Sum, wmin, wmax)
			}
			if g.StartTime.IsZero() || g.Time.Before(g.StartTime) {
				t.Errorf("start %v, time %v", g.StartTime, g.Time)
			}
		}
		if !found {
			t.Errorf("no point for %v", w.Attributes.Encoded(attribute.DefaultEncoder()))
		}
	}
}

// Collections running alongside records see the buckets and the count
// agree, and none is lost.
func TestRequestDurationConcurrentCollect(t *testing.T) {
	prod, _, _, in := newDurationTest(t)
	const workers, each = 4, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				in.recordRequest("/api", "web", 0, 2, time.Duration(w*each+i)*time.Millisecond)
			}
		})
	}
	check := func() uint64 {
		sms, err := prod.Produce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, p := range sms[0].Metrics[0].Data.(metricdata.Histogram[float64]).DataPoints {
			var sum uint64
			for _, c := range p.BucketCounts {
				sum += c
			}
			if sum != p.Count {
				t.Fatalf("buckets add up to %d, count %d", sum, p.Count)
			}
			n += p.Count
		}
		return n
	}
	for range 20 {
		check()
	}
	wg.Wait()
	if n := check(); n != workers*each {
		t.Fatalf("count %d, want %d", n, workers*each)
	}
}

// /metrics shows the request-duration histogram as before: its help,
// type, every bucket, _sum and _count, per label set.
func TestRequestDurationExposition(t *testing.T) {
	b := newBackend(t)
	r := newRig(t, rigOpts{noTracing: true, instances: []discovery.Instance{{ID: "live", Address: b.addr()}}})
	if m := scrape(t, r.tel); strings.Contains(m, "switchyard_request_duration_seconds_count") {
		t.Fatalf("a duration series before any request:\n%s", grepLines(m, "switchyard_request_duration"))
	}
	for range 3 {
		r.do(t, "GET", "/api/x", "x", nil)
	}
	m := scrape(t, r.tel)
	lines := grepLines(m, "switchyard_request_duration_seconds")
	labels := []string{`method="GET"`, `route="/api"`, `service="web"`, `status_class="2xx"`}
	wantSeries(t, m, "switchyard_request_duration_seconds_count", append(labels, "} 3")...)
	wantSeries(t, m, "switchyard_request_duration_seconds_bucket", append(labels, `le="+Inf"} 3`)...)
	wantSeries(t, m, "switchyard_request_duration_seconds_sum", labels...)
	for _, le := range durationBuckets {
		wantSeries(t, m, "switchyard_request_duration_seconds_bucket", append(labels, fmt.Sprintf(`le="%v"`, le))...)
	}
	if n := strings.Count(lines, "switchyard_request_duration_seconds_bucket{"); n != len(durationBuckets)+1 {
		t.Errorf("%d bucket lines, want %d:\n%s", n, len(durationBuckets)+1, lines)
	}
	for _, want := range []string{
		"# HELP switchyard_request_duration_seconds " + requestDurationDesc,
		"# TYPE switchyard_request_duration_seconds histogram",
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("missing %q in\n%s", want, grepLines(m, "# "))
		}
	}
	r.do(t, "GET", "/api/x", "x", nil)
	wantSeries(t, scrape(t, r.tel), "switchyard_request_duration_seconds_count", append(labels, "} 4")...)
}

func TestMergeScopes(t *testing.T) {
	a := metricdata.ScopeMetrics{Metrics: []metricdata.Metrics{{Name: "a"}}}
	a.Scope.Name = ScopeName
	o := metricdata.ScopeMetrics{Metrics: []metricdata.Metrics{{Name: "o"}}}
	o.Scope.Name = "other"
	b := metricdata.ScopeMetrics{Metrics: []metricdata.Metrics{{Name: "b"}}}
	b.Scope.Name = ScopeName
	got := mergeScopes([]metricdata.ScopeMetrics{a, o, b})
	if len(got) != 2 || len(got[0].Metrics) != 2 || got[0].Metrics[1].Name != "b" || got[1].Scope.Name != "other" {
		t.Fatalf("%+v", got)
	}
}
