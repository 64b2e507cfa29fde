package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Reasons a request that was not sampled is kept after the fact, as bits
// of a reasons value. The order is the order of precedence: a trace is
// counted once, under its first reason.
const (
	reasonNoHealthy reasons = 1 << iota // 503: the service had no healthy instance
	reasonEjection                      // an attempt made passive health eject its instance
	reasonPanic                         // picked from every instance (panic threshold)
	reasonRetry                         // more than one attempt
	reason5xx                           // a 5xx was sent to the client
	reasonSlow                          // it took longer than telemetry.slow_threshold
	numReasons      = iota
)

// reasons is a set of reason bits; zero means the request was boring.
type reasons uint8

var reasonNames = [numReasons]string{"no_healthy_instance", "ejection", "panic", "retry", "5xx", "slow"}

// first returns the index of the first reason in r; r must not be zero.
func (r reasons) first() int {
	for i := range numReasons {
		if r&(1<<i) != 0 {
			return i
		}
	}
	return 0
}

// names lists the reasons in r.
func (r reasons) names() []string {
	out := make([]string, 0, numReasons)
	for i := range numReasons {
		if r&(1<<i) != 0 {
			out = append(out, reasonNames[i])
		}
	}
	return out
}

// keeper caps the traces kept after the fact with a token bucket per
// route, each refilled at an equal share of the rate: the rate divided by
// the number of routes that had an interesting request so far. A route
// whose backend is down (every request a 502) spends its own share only.
// Safe for concurrent use.
type keeper struct {
	rate    float64 // traces per second, all routes together
	buckets cowMap[string, *bucket]
	routes  atomic.Int64 // buckets made so far

	// counts[reason][0] is traces kept, [1] traces the cap refused.
	counts [numReasons][2]atomic.Int64
}

type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newKeeper(rate float64) *keeper { return &keeper{rate: rate} }

// allow takes a token from route's bucket, reporting whether there was one,
// and counts the decision under why's first reason.
func (k *keeper) allow(route string, why reasons, now time.Time) bool {
	b := k.buckets.get(route, func(string) *bucket {
		k.routes.Add(1)
		return &bucket{tokens: -1, last: now} // filled below
	})
	share := k.rate / float64(k.routes.Load())
	burst := max(share, 1)
	b.mu.Lock()
	if b.tokens < 0 {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*share)
	}
	b.last = now
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	b.mu.Unlock()
	res := 0
	if !ok {
		res = 1
	}
	k.counts[why.first()][res].Add(1)
	return ok
}

// MetricFailureTraces counts traces kept after the fact by failure-biased
// sampling, by reason and result (kept, or capped by the rate).
const MetricFailureTraces = "switchyard.telemetry.failure_traces"

// observe exports the keeper's counts on meter.
func (k *keeper) observe(m metric.Meter) error {
	var sets [numReasons][2]metric.ObserveOption
	for i := range numReasons {
		for j, res := range [2]string{"kept", "capped"} {
			sets[i][j] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("reason", reasonNames[i]), attribute.String("result", res)))
		}
	}
	_, err := m.Int64ObservableCounter(MetricFailureTraces,
		metric.WithDescription("Requests not sampled at their start but kept after the fact (failures+ samplers), by first reason and result (kept, or capped by telemetry.failure_traces_per_second)."),
		metric.WithUnit("{trace}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for i := range numReasons {
				for j := range 2 {
					o.Observe(k.counts[i][j].Load(), sets[i][j])
				}
			}
			return nil
		}))
	return err
}
