package gateway

import (
	"fmt"
	"testing"

	"github.com/switchyard-gw/switchyard/config"

	"github.com/switchyard-gw/switchyard/discovery"
)

func instances(ids ...string) []discovery.Instance {
	out := make([]discovery.Instance, len(ids))
	for i, id := range ids {
		out[i] = discovery.Instance{ID: id, Address: "127.0.0.1:" + fmt.Sprint(9000+i)}
	}
	return out
}

func picks(p *pool, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = p.pick().ID
	}
	return out
}

func TestRoundRobinThenHealthUpdateSkipsTheUnhealthyInstance(t *testing.T) {
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.offset = func() uint64 { return 0 }
	g.SetHealthy("web", instances("1", "2", "3"), false)
	svc := g.services["web"]
	if got := fmt.Sprint(picks(svc.pool.Load(), 4)); got != "[1 2 3 1]" {
		t.Fatalf("picks = %s, want [1 2 3 1]", got)
	}
	// The health checker marks "1" unhealthy: it publishes the other two.
	g.SetHealthy("web", []discovery.Instance{{ID: "2", Address: "a:2"}, {ID: "3", Address: "a:3"}}, false)
	if got := fmt.Sprint(picks(svc.pool.Load(), 4)); got != "[2 3 2 3]" {
		t.Fatalf("picks after update = %s, want [2 3 2 3]", got)
	}
}

func TestRoundRobinIsFairAcrossAnyStartingOffset(t *testing.T) {
	for _, offset := range []uint64{0, 1, 2, ^uint64(0) - 1} {
		p := newPool("web", instances("a", "b", "c"), nil, poolSpec{offset: offset})
		counts := map[string]int{}
		for range 300 {
			counts[p.pick().ID]++
		}
		for id, n := range counts {
			if n < 99 || n > 101 {
				t.Errorf("offset %d: instance %s got %d of 300, want 100±1", offset, id, n)
			}
		}
		if len(counts) != 3 {
			t.Errorf("offset %d: %d instances picked, want 3", offset, len(counts))
		}
	}
}

func TestPickOnEmptyPoolReturnsNil(t *testing.T) {
	if u := newPool("web", nil, nil, poolSpec{}).pick(); u != nil {
		t.Fatalf("pick on empty pool = %v, want nil", u)
	}
}

func TestRetriesTakeTheNextInstancesWithoutAdvancingTheRoundRobin(t *testing.T) {
	p := newPool("web", instances("a", "b", "c"), nil, poolSpec{})
	first := p.pick() // a
	tried := []*Upstream{first}
	for _, want := range []string{"b", "c"} {
		u := p.retryPick(tried)
		if u == nil || u.ID != want {
			t.Fatalf("retry after %d = %v, want %s", len(tried), u, want)
		}
		tried = append(tried, u)
	}
	if u := p.retryPick(tried); u != nil {
		t.Fatalf("retry with all tried = %v, want nil", u.ID)
	}
	// A dead "a" must not pull the next request onto itself again.
	if u := p.pick(); u.ID != "b" {
		t.Fatalf("next request starts on %s, want b", u.ID)
	}
}

// pickPools are the pools BenchmarkPick and TestPickAllocatesNothing use,
// one per policy: three instances, weighted 5,1,1 where weights apply.
func pickPools() map[string]*pool {
	return map[string]*pool{
		"round_robin":          newPool("web", instances("a", "b", "c"), nil, poolSpec{}),
		"weighted_round_robin": newPool("web", weighted(5, 1, 1), nil, poolSpec{}),
		"least_request":        newPool("web", weighted(5, 1, 1), nil, poolSpec{bal: Balancing{Policy: config.PolicyLeastRequest}}),
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	for name, p := range pickPools() {
		if n := testing.AllocsPerRun(1000, func() { p.pick() }); n != 0 {
			t.Errorf("%s: pick allocates %v times, want 0", name, n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	pools := pickPools()
	for _, name := range []string{"round_robin", "weighted_round_robin", "least_request"} {
		p := pools[name]
		b.Run("policy="+name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.pick()
				}
			})
		})
	}
}

func defaultRoute() []config.Route { return []config.Route{{PathPrefix: "/", Service: "web"}} }
