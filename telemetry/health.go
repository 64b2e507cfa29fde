package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-gw/switchyard/health"
)

// ProbeHook returns the health checker's OnProbe callback: probe latency
// into a histogram and, with telemetry.trace_probes, one span per probe.
// Nil when telemetry is disabled.
func (t *Telemetry) ProbeHook() func(service, id string, latency time.Duration, err error) {
	if t.inst == nil {
		return nil
	}
	return t.onProbe
}

type probeKey struct {
	service, instance string
	ok                bool
}

func (t *Telemetry) onProbe(service, id string, latency time.Duration, err error) {
	opts := t.inst.probeSets.get(probeKey{service, id, err == nil}, func(k probeKey) []metric.RecordOption {
		result := "ok"
		if !k.ok {
			result = "fail"
		}
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("service", k.service),
			attribute.String("instance", k.instance),
			attribute.String("result", result),
		))}
	})
	t.inst.probe.Record(context.Background(), latency.Seconds(), opts...)
	if !t.tracing || !t.set.traceProbes {
		return
	}
	end := time.Now()
	attrs := []attribute.KeyValue{AttrService.String(service), AttrInstanceID.String(id)}
	if t.rq != nil {
		tid := randomTraceID()
		if !t.head.sampled(trace.SpanContext{}, tid) {
			return
		}
		r := spanRec{sc: spanContext(tid, randomSpanID(), 0, trace.TraceState{}), kind: trace.SpanKindClient,
			name: "health probe", start: end.Add(-latency), end: end, attrs: attrs}
		r.status, r.desc = clientStatus(0, err)
		if err != nil {
			r.events = errorEvents(err, end)
		}
		t.record(&r)
		return
	}
	_, span := t.tracer.Start(context.Background(), "health probe",
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(end.Add(-latency)),
		trace.WithAttributes(attrs...),
	)
	if err != nil {
		span.RecordError(err)
	}
	if code, desc := clientStatus(0, err); code != codes.Unset {
		span.SetStatus(code, desc)
	}
	span.End(trace.WithTimestamp(end))
}

// TransitionHook returns the health checker's OnTransition callback, which
// counts instances entering and leaving rotation (the checker logs them).
// Nil when telemetry is disabled.
func (t *Telemetry) TransitionHook() func(service, id string, routable bool, reason string) {
	if t.inst == nil {
		return nil
	}
	return func(service, id string, routable bool, _ string) {
		state := "unroutable"
		if routable {
			state = "routable"
		}
		t.inst.transitions.Add(context.Background(), 1, metric.WithAttributes(
			attribute.String("service", service),
			attribute.String("instance", id),
			attribute.String("state", state),
		))
	}
}

// ObserveHealth exports the healthy-instance count per service and the
// routable state (1 or 0) per instance, read from services at collection
// time. services must be safe for concurrent use.
func (t *Telemetry) ObserveHealth(services func() []health.ServiceStatus) error {
	if t.inst == nil {
		return nil
	}
	m := t.inst.meter
	healthy, err := m.Int64ObservableGauge(MetricHealthy,
		metric.WithDescription("Instances in rotation, per service."),
		metric.WithUnit("{instance}"))
	if err != nil {
		return err
	}
	routable, err := m.Int64ObservableGauge(MetricRoutable,
		metric.WithDescription("1 while the instance is in rotation, 0 while it is known but out of rotation."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range services() {
			o.ObserveInt64(healthy, int64(s.Healthy), metric.WithAttributes(attribute.String("service", s.Name)))
			for _, in := range s.Instances {
				v := int64(0)
				if in.Routable {
					v = 1
				}
				o.ObserveInt64(routable, v, metric.WithAttributes(attribute.String("service", s.Name), attribute.String("instance", in.ID)))
			}
		}
		return nil
	}, healthy, routable)
	return err
}
