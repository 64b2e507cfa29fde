package gateway

import (
	"fmt"
	"testing"

	"github.com/switchyard-gw/switchyard/discovery"
)

func weighted(weights ...int) []discovery.Instance {
	out := make([]discovery.Instance, len(weights))
	for i, w := range weights {
		out[i] = discovery.Instance{ID: string(rune('a' + i)), Address: fmt.Sprintf("127.0.0.1:%d", 9000+i), Weight: discovery.WeightOf(w)}
	}
	return out
}

func TestWeightedPoolPicksInTheSmoothOrder(t *testing.T) {
	p := newPool("web", weighted(5, 1, 1), nil, poolSpec{})
	if got := fmt.Sprint(picks(p, 14)); got != "[a a b a c a a a a b a c a a]" {
		t.Fatalf("picks = %s, want two cycles of a a b a c a a", got)
	}
}

func TestEqualWeightsPickExactlyAsPlainRoundRobin(t *testing.T) {
	for _, offset := range []uint64{0, 5, ^uint64(0)} {
		plain := newPool("web", instances("a", "b", "c"), nil, poolSpec{offset: offset})
		heavy := newPool("web", []discovery.Instance{
			{ID: "a", Address: "127.0.0.1:9000", Weight: 4},
			{ID: "b", Address: "127.0.0.1:9001", Weight: 4},
			{ID: "c", Address: "127.0.0.1:9002", Weight: 4},
		}, nil, poolSpec{offset: offset})
		if heavy.sched != nil {
			t.Fatalf("equal weights built a schedule of %d slots, want none", len(heavy.sched))
		}
		if a, b := fmt.Sprint(picks(plain, 7)), fmt.Sprint(picks(heavy, 7)); a != b {
			t.Errorf("offset %d: weight 4 each picks %s, unweighted %s", offset, b, a)
		}
	}
}

func TestADrainedInstanceGetsNoTrafficAndIsNotRetried(t *testing.T) {
	p := newPool("web", weighted(1, 0, 1), nil, poolSpec{})
	counts := map[string]int{}
	for _, id := range picks(p, 100) {
		counts[id]++
	}
	if counts["b"] != 0 || counts["a"] != 50 || counts["c"] != 50 {
		t.Fatalf("picks = %v, want a and c 50 each, b (weight 0) none", counts)
	}
	first := p.pick()
	if u := p.retryPick([]*Upstream{first}); u == nil || u.ID == "b" || u == first {
		t.Fatalf("retry after %s = %v, want the other undrained instance", first.ID, u)
	}
	if all := newPool("web", weighted(0, 0), nil, poolSpec{}); all.pick() != nil {
		t.Fatal("a pool of drained instances picked one, want none")
	}
}

func TestCanaryWeightsGiveExactSharesOver10000Requests(t *testing.T) {
	// Three v1 instances of weight 3 and one v2 canary of weight 1: 90/10.
	p := newPool("web", weighted(3, 3, 3, 1), nil, poolSpec{offset: 12345})
	counts := map[string]int{}
	for _, id := range picks(p, 10000) {
		counts[id]++
	}
	if counts["d"] != 1000 || counts["a"]+counts["b"]+counts["c"] != 9000 {
		t.Fatalf("picks over 10,000 = %v, want the canary d exactly 1000", counts)
	}
}

func TestWeightChangeKeepsTheUpstream(t *testing.T) {
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.SetHealthy("web", weighted(1, 1), false)
	before := g.services["web"].pool.Load().upstreams[0]
	before.fails.Store(3)
	g.SetHealthy("web", weighted(5, 1), false)
	p := g.services["web"].pool.Load()
	if p.upstreams[0] != before || before.fails.Load() != 3 {
		t.Fatal("a weight change replaced the upstream (and its counters)")
	}
	if w, eff := p.weightOf(before); w != 5 || eff != 5 {
		t.Fatalf("weight of a = %d (effective %v), want 5 (5)", w, eff)
	}
}
