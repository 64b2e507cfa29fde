package gateway

import (
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// Balancing is how the requests of one service are spread over its
// routable instances.
type Balancing struct {
	// Policy is config.PolicyRoundRobin (also for "") or
	// config.PolicyLeastRequest.
	Policy string
	// SlowStart is the window over which an instance that joins rotation
	// ramps up to its full weight; 0 turns slow start off.
	SlowStart time.Duration
}

type policy uint8

const (
	roundRobin policy = iota
	leastRequest
)

func (b Balancing) policy() policy {
	if b.Policy == config.PolicyLeastRequest {
		return leastRequest
	}
	return roundRobin
}

// slowStartFloor is the share of its weight an instance gets the moment it
// joins rotation under slow start (Envoy's min_weight_percent default).
const slowStartFloor = 0.1

// effectiveWeight returns weight (configured units) in effectiveScale units
// at now for an instance that joined rotation at joined: full weight when
// joined is zero or window is over, otherwise a linear ramp from
// slowStartFloor to full over window. Never below 1.
func effectiveWeight(weight int, joined, now time.Time, window time.Duration) int {
	full := weight * effectiveScale
	if joined.IsZero() || window <= 0 {
		return full
	}
	elapsed := now.Sub(joined)
	if elapsed >= window {
		return full
	}
	f := slowStartFloor + (1-slowStartFloor)*float64(max(elapsed, 0))/float64(window)
	return max(1, int(float64(full)*f))
}

// rampStep is how often the pool of a service with ramping instances is
// rebuilt: the window in rampSteps steps, but not more often than
// minRampStep.
const (
	rampSteps   = 20
	minRampStep = 50 * time.Millisecond
)

func rampStep(window time.Duration) time.Duration {
	return max(window/rampSteps, minRampStep)
}

// ramping reports whether some upstream of p is still below its full weight.
func (p *pool) ramping() bool {
	for i, w := range p.weights {
		if p.effective[i] < w*effectiveScale {
			return true
		}
	}
	return false
}

// pickLeast is the power of two random choices: two upstreams drawn by
// effective weight, the one with fewer requests in flight wins (the first
// on a tie). A pair that lands twice on one upstream is drawn again once,
// so two instances are compared nearly always when there are two.
func (p *pool) pickLeast() *Upstream {
	a, b := p.sample()
	if a == b && len(p.upstreams) > 1 {
		a, b = p.sample()
	}
	ua, ub := p.upstreams[a], p.upstreams[b]
	if ub.inflight.Load() < ua.inflight.Load() {
		return ub
	}
	return ua
}

// attempt describes the n-th attempt on u for the Attempt hook.
func (p *pool) attempt(u *Upstream, n int) Attempt {
	a := Attempt{Upstream: u, N: n, Healthy: len(p.upstreams), Panic: p.panic, Policy: config.PolicyRoundRobin}
	if p.policy == leastRequest {
		a.Policy = config.PolicyLeastRequest
	}
	_, a.Weight = p.weightOf(u)
	return a
}
