package telemetry

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchyard-gw/switchyard/discovery"
)

// errorPoll is how often an observed source's Status is checked for a new
// error streak.
const errorPoll = time.Second

// ObserveDiscovery returns src wrapped so that every snapshot is counted
// and its changes logged, and the source's freshness is exported: the time
// of its last success, and the number of error streaks (a source entering
// an error state; discovery.Status carries no per-fetch count). Status and
// Run pass through to src.
func (t *Telemetry) ObserveDiscovery(src discovery.Source) (discovery.Source, error) {
	o := &observedSource{Source: src, t: t, provider: src.Status().Provider}
	if t.inst == nil {
		return o, nil
	}
	m := t.inst.meter
	provider := metric.WithAttributes(attribute.String("provider", o.provider))
	var err error
	if o.updates, err = m.Int64Counter(MetricDiscoveryUpd,
		metric.WithDescription("Discovery snapshots applied, by provider."),
		metric.WithUnit("{snapshot}")); err != nil {
		return nil, err
	}
	o.updateOpts = []metric.AddOption{provider}
	if _, err = m.Float64ObservableGauge(MetricDiscoverySucc,
		metric.WithDescription("Unix time of the discovery source's last complete snapshot, by provider."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, obs metric.Float64Observer) error {
			if ts := src.Status().LastSuccess; !ts.IsZero() {
				obs.Observe(float64(ts.UnixNano())/1e9, provider)
			}
			return nil
		})); err != nil {
		return nil, err
	}
	if _, err = m.Int64ObservableCounter(MetricDiscoveryErrors,
		metric.WithDescription("Times the discovery source entered an error state (it keeps the last good snapshot), by provider."),
		metric.WithUnit("{error}"),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			o.pollErrors()
			obs.Observe(o.errors.Load(), provider)
			return nil
		})); err != nil {
		return nil, err
	}
	return o, nil
}

// observedSource is a discovery.Source that observes the one it wraps.
type observedSource struct {
	discovery.Source
	t          *Telemetry
	provider   string
	updates    metric.Int64Counter // nil: metrics off
	updateOpts []metric.AddOption

	errMu     sync.Mutex
	errSince  time.Time // ErrorSince of the streak last counted
	errors    atomic.Int64
	prev      map[string][]string // instance ids per service; Run's goroutine only
	prevValid bool
}

// Run runs the wrapped source, observing each snapshot before update sees
// it, and polls Status for error streaks until ctx is done.
func (o *observedSource) Run(ctx context.Context, update func(discovery.Snapshot)) error {
	var wg sync.WaitGroup
	pollCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	if o.updates != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(errorPoll)
			defer tick.Stop()
			for {
				select {
				case <-pollCtx.Done():
					return
				case <-tick.C:
					o.pollErrors()
				}
			}
		}()
	}
	return o.Source.Run(ctx, func(s discovery.Snapshot) {
		o.observe(ctx, s)
		update(s)
	})
}

// pollErrors counts a new error streak. Safe for concurrent use.
func (o *observedSource) pollErrors() {
	st := o.Source.Status()
	if st.LastError == "" {
		return
	}
	o.errMu.Lock()
	defer o.errMu.Unlock()
	if st.ErrorSince.Equal(o.errSince) {
		return
	}
	o.errSince = st.ErrorSince
	o.errors.Add(1)
}

// observe counts the snapshot and logs what changed in it.
func (o *observedSource) observe(ctx context.Context, s discovery.Snapshot) {
	if o.updates != nil {
		o.updates.Add(ctx, 1, o.updateOpts...)
	}
	cur := make(map[string][]string, len(s.Services))
	instances := 0
	for _, svc := range s.Services {
		ids := make([]string, len(svc.Instances))
		for i, in := range svc.Instances {
			ids[i] = in.ID
		}
		cur[svc.Name] = ids
		instances += len(ids)
	}
	if !o.prevValid {
		o.t.log.Info("discovery: first snapshot", "provider", o.provider, "services", len(cur), "instances", instances)
		o.prev, o.prevValid = cur, true
		return
	}
	var added, removed []string
	for name, ids := range cur {
		for _, id := range ids {
			if !slices.Contains(o.prev[name], id) {
				added = append(added, name+"/"+id)
			}
		}
	}
	for name, ids := range o.prev {
		for _, id := range ids {
			if !slices.Contains(cur[name], id) {
				removed = append(removed, name+"/"+id)
			}
		}
	}
	o.prev = cur
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	slices.Sort(added)
	slices.Sort(removed)
	o.t.log.Info("discovery: instances changed", "provider", o.provider, "services", len(cur), "instances", instances,
		"added", firstN(added, 20), "removed", firstN(removed, 20))
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}
