package gateway

// This file builds the weighted round-robin schedule of a pool: the order
// in which one cycle visits the instances, computed once per pool so that
// a pick stays one atomic add and an index.

// maxSchedule bounds the length of one cycle. Weights whose reduced sum is
// larger are scaled down in proportion (every instance keeps at least one
// slot), so shares are then exact to within about one slot in maxSchedule.
const maxSchedule = 4096

// wrrSchedule returns the order of one weighted round-robin cycle as
// indices into weights, interleaved as nginx's smooth weighted round-robin
// does: over one cycle instance i appears exactly weights[i]/g times (g the
// greatest common divisor of the weights), and no instance gets a burst its
// weight does not call for (weights 5,1,1 give a a b a c a a).
//
// It returns nil when every weight is equal: plain round-robin in slice
// order, which the smooth algorithm would produce too. Weights must be
// positive.
func wrrSchedule(weights []int) []uint32 {
	if equalWeights(weights) {
		return nil
	}
	w := reduceWeights(weights)
	total := 0
	for _, x := range w {
		total += x
	}
	sched := make([]uint32, total)
	current := make([]int, len(w))
	for s := range sched {
		best := 0
		for i, x := range w {
			current[i] += x
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		sched[s] = uint32(best)
	}
	return sched
}

func equalWeights(weights []int) bool {
	for _, x := range weights {
		if x != weights[0] {
			return false
		}
	}
	return true
}

// reduceWeights divides weights by their greatest common divisor and, when
// the sum still exceeds maxSchedule (or the instance count, if larger),
// scales them down in proportion with a floor of 1. The result is a new
// slice.
func reduceWeights(weights []int) []int {
	g := 0
	for _, x := range weights {
		g = gcd(g, x)
	}
	out := make([]int, len(weights))
	total := 0
	for i, x := range weights {
		out[i] = x / g
		total += out[i]
	}
	limit := max(maxSchedule, len(weights))
	if total <= limit {
		return out
	}
	for i, x := range out {
		out[i] = max(1, int(int64(x)*int64(limit)/int64(total)))
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
