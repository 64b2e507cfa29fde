package gateway

import (
	"strings"
	"testing"
)

func letters(sched []uint32) string {
	var b strings.Builder
	for _, i := range sched {
		b.WriteByte('a' + byte(i))
	}
	return b.String()
}

func TestWRRScheduleInterleavesAsSmoothWeightedRoundRobin(t *testing.T) {
	for _, c := range []struct {
		name    string
		weights []int
		want    string
	}{
		// The sequence nginx documents for its smooth weighted round-robin.
		{"weights 5,1,1 give one instance no burst", []int{5, 1, 1}, "aabacaa"},
		{"weights 2,1 alternate around the heavier one", []int{2, 1}, "aba"},
		{"a common divisor shortens the cycle", []int{10, 5}, "aba"},
		{"a canary of 9 to 1 is spread over the cycle", []int{9, 1}, "aaaaabaaaa"},
		{"weights 3,2 interleave", []int{3, 2}, "ababa"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := letters(wrrSchedule(c.weights)); got != c.want {
				t.Fatalf("schedule(%v) = %s, want %s", c.weights, got, c.want)
			}
		})
	}
}

// smoothReference is nginx's smooth weighted round-robin, step by step,
// as ngx_http_upstream_get_peer computes it: the oracle for the schedule.
func smoothReference(weights []int, n int) []uint32 {
	current := make([]int, len(weights))
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]uint32, n)
	for s := range out {
		best := -1
		for i, w := range weights {
			current[i] += w
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out[s] = uint32(best)
	}
	return out
}

func TestWRRScheduleMatchesTheStepwiseAlgorithmAndGivesExactShares(t *testing.T) {
	for _, weights := range [][]int{
		{5, 1, 1}, {1, 2, 3, 4}, {7, 3}, {100, 1}, {13, 17, 19, 23}, {1, 1, 2}, {50, 50, 1},
	} {
		sched := wrrSchedule(weights)
		if got, want := letters(sched), letters(smoothReference(weights, len(sched))); got != want {
			t.Errorf("weights %v: schedule %s, stepwise %s", weights, got, want)
		}
		g := 0
		for _, w := range weights {
			g = gcd(g, w)
		}
		counts := make([]int, len(weights))
		for _, i := range sched {
			counts[i]++
		}
		for i, w := range weights {
			if counts[i] != w/g {
				t.Errorf("weights %v: instance %d appears %d times per cycle, want %d", weights, i, counts[i], w/g)
			}
		}
	}
}

func TestWRRScheduleWithEqualWeightsIsPlainRoundRobin(t *testing.T) {
	for _, weights := range [][]int{{1}, {1, 1, 1}, {7, 7}} {
		if s := wrrSchedule(weights); s != nil {
			t.Errorf("weights %v: schedule %v, want nil (plain round-robin)", weights, s)
		}
		// The smooth algorithm agrees: equal weights visit in slice order.
		if got, want := letters(smoothReference(weights, len(weights))), letters(identity(len(weights))); got != want {
			t.Errorf("weights %v: stepwise %s, want %s", weights, got, want)
		}
	}
}

func identity(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

func TestWRRScheduleStaysBoundedForHugeWeights(t *testing.T) {
	weights := []int{10000, 9999, 1, 3}
	sched := wrrSchedule(weights)
	if len(sched) > maxSchedule+len(weights) {
		t.Fatalf("cycle of %d slots, want at most %d", len(sched), maxSchedule+len(weights))
	}
	counts := make([]int, len(weights))
	for _, i := range sched {
		counts[i]++
	}
	total := 20003.0
	for i, w := range weights {
		share, want := float64(counts[i])/float64(len(sched)), float64(w)/total
		if d := share - want; d > 0.001 || d < -0.001 || counts[i] == 0 {
			t.Errorf("instance %d: share %.4f (%d slots), want %.4f±0.001 and at least one slot", i, share, counts[i], want)
		}
	}
}
