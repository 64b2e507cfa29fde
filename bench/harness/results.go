package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// sample is one measured run of one target at one connection count.
type sample struct {
	ok        bool
	rps       float64
	p50, p99  time.Duration
	errors    int64
	requests  int64
	proxy     bool          // the fields below are set (not for direct)
	cpuPerReq time.Duration // proxy CPU (all its processes) per request
	rssKiB    int64         // peak resident set (VmHWM) of the serving process
}

func (s sample) String() string {
	out := fmt.Sprintf("%9s req/s  p50 %7s  p99 %7s", group(s.rps), fmtDur(s.p50), fmtDur(s.p99))
	if s.proxy {
		out += fmt.Sprintf("  cpu %6.1fµs/req  rss %5.1f MiB", us(s.cpuPerReq), mib(s.rssKiB))
	}
	if s.errors > 0 {
		out += fmt.Sprintf("  ERRORS %d", s.errors)
	}
	return out
}

// results holds every sample by target, connection count and round.
type results struct {
	rounds int
	conns  []int
	names  []string
	by     map[string]map[int][]sample
}

func newResults(targets []target, conns []int, rounds int) *results {
	r := &results{rounds: rounds, conns: conns, by: map[string]map[int][]sample{}}
	for _, t := range targets {
		r.names = append(r.names, t.name)
		r.by[t.name] = map[int][]sample{}
		for _, c := range conns {
			r.by[t.name][c] = make([]sample, rounds)
		}
	}
	return r
}

func (r *results) put(name string, conns, round int, s sample) { r.by[name][conns][round] = s }

func (r *results) get(name string, conns, round int) (sample, bool) {
	m, ok := r.by[name]
	if !ok {
		return sample{}, false
	}
	s := m[conns]
	if round >= len(s) || !s[round].ok {
		return sample{}, false
	}
	return s[round], true
}

// spread is the median and range of a set of values.
type spread struct {
	med, min, max float64
	n             int
}

func summarize(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[len(s)-1], n: len(s)}
}

// over summarizes metric over the rounds in which name ran at conns.
func (r *results) over(name string, conns int, metric func(sample) float64) spread {
	var v []float64
	for round := 0; round < r.rounds; round++ {
		if s, ok := r.get(name, conns, round); ok {
			v = append(v, metric(s))
		}
	}
	return summarize(v)
}

// ratio summarizes num/den computed within each round, so that only
// measurements taken next to each other are compared. Rounds where either
// side is missing or the denominator is not positive are left out.
func (r *results) ratio(conns int, num, den func(round int) (float64, bool)) spread {
	return summarize(r.ratios(conns, num, den))
}

// ratios are the same-round ratios that ratio summarizes, in round order.
func (r *results) ratios(conns int, num, den func(round int) (float64, bool)) []float64 {
	var v []float64
	for round := 0; round < r.rounds; round++ {
		a, ok1 := num(round)
		b, ok2 := den(round)
		if ok1 && ok2 && b > 0 {
			v = append(v, a/b)
		}
	}
	return v
}

// quantile is the q-quantile of v (0 ≤ q ≤ 1), interpolated linearly
// between the order statistics; v must not be empty.
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	x := q * float64(len(s)-1)
	i := int(x)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (x-float64(i))*(s[i+1]-s[i])
}

// medianCI is a distribution-free 95% confidence interval of the median of
// the population v was drawn from: the order statistics j and n+1-j
// (from 1), j the largest with P(Binomial(n, 1/2) < j) ≤ 2.5%. ok is false
// below 6 values, where no such j exists.
func medianCI(v []float64) (lo, hi float64, ok bool) {
	n := len(v)
	s := slices.Clone(v)
	slices.Sort(s)
	// cdf is P(Binomial(n, 1/2) ≤ k), summed from P(0) = 2^-n up.
	p := math.Pow(0.5, float64(n))
	cdf := 0.0
	j := 0
	for k := 0; k < n; k++ {
		cdf += p
		if cdf > 0.025 {
			break
		}
		j = k + 1 // P(X < k+1) = P(X ≤ k) ≤ 2.5%
		p *= float64(n-k) / float64(k+1)
	}
	if j == 0 {
		return 0, 0, false
	}
	return s[j-1], s[n-j], true
}

// metricOf returns a per-round getter for metric of name at conns.
func (r *results) metricOf(name string, conns int, metric func(sample) float64) func(int) (float64, bool) {
	return func(round int) (float64, bool) {
		s, ok := r.get(name, conns, round)
		if !ok {
			return 0, false
		}
		return metric(s), true
	}
}

// addedP50 is name's p50 minus direct's p50 in the same round.
func (r *results) addedP50(name string, conns int) func(int) (float64, bool) {
	return func(round int) (float64, bool) {
		s, ok1 := r.get(name, conns, round)
		d, ok2 := r.get(tDirect, conns, round)
		if !ok1 || !ok2 {
			return 0, false
		}
		return us(s.p50 - d.p50), true
	}
}

var (
	mRPS = func(s sample) float64 { return s.rps }
	mP50 = func(s sample) float64 { return us(s.p50) }
	mP99 = func(s sample) float64 { return us(s.p99) }
	mCPU = func(s sample) float64 { return us(s.cpuPerReq) }
	mRSS = func(s sample) float64 { return mib(s.rssKiB) }
)
