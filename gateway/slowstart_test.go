package gateway

import (
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
)

// slowStartGateway is a gateway with a slow-start window on service web
// and a clock the test steps; its first snapshot holds startup.
func slowStartGateway(t *testing.T, window time.Duration, startup ...discovery.Instance) (*Gateway, *time.Time) {
	t.Helper()
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.CloseIdleConnections) // stops pending slow-start steps
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return clock }
	g.offset = func() uint64 { return 0 }
	snap := discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: startup}}}
	g.SetServices(snap, func(discovery.Service) Balancing { return Balancing{SlowStart: window} })
	return g, &clock
}

// shareOf returns id's share of one full cycle of the current pool.
func shareOf(g *Gateway, id string) float64 {
	p := g.services["web"].pool.Load()
	n := len(p.sched)
	if n == 0 {
		n = len(p.upstreams)
	}
	hits := 0
	for _, got := range picks(p, n) {
		if got == id {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

func TestARecoveredInstanceRampsUpToItsFullShare(t *testing.T) {
	both := weighted(1, 1)
	g, clock := slowStartGateway(t, 10*time.Second, both...)
	g.SetHealthy("web", both, false)
	if s := shareOf(g, "b"); s != 0.5 {
		t.Fatalf("share of b at startup = %.3f, want 0.5: instances found at startup take full weight", s)
	}
	g.SetHealthy("web", both[:1], false) // b fails its probes
	g.SetHealthy("web", both, false)     // and recovers

	svc := g.services["web"]
	var shares []float64
	for step := 0; step <= 5; step++ {
		shares = append(shares, shareOf(g, "b"))
		*clock = clock.Add(2500 * time.Millisecond)
		g.rampTick(svc)
	}
	t.Logf("share of b every 2.5s of a 10s window: %.3f", shares)
	if shares[0] > 0.1 || shares[0] <= 0 {
		t.Errorf("share right after recovery = %.3f, want 10%% of its weight: 0.091", shares[0])
	}
	for i := 1; i < 5; i++ {
		if shares[i] <= shares[i-1] {
			t.Errorf("share did not grow from step %d to %d: %.3f", i-1, i, shares)
		}
	}
	if shares[4] != 0.5 || shares[5] != 0.5 {
		t.Errorf("share at and after the window = %.3f, %.3f; want the full 0.5", shares[4], shares[5])
	}
	if svc.ramp != nil {
		t.Error("a slow-start step is still pending after the window")
	}
}

func TestInstancesFoundAtStartupJoinAtFullWeightOneByOne(t *testing.T) {
	all := weighted(1, 1, 1)
	g, _ := slowStartGateway(t, time.Minute, all...)
	// The first probe round publishes the instances one by one.
	for n := 1; n <= 3; n++ {
		g.SetHealthy("web", all[:n], false)
	}
	if p := g.services["web"].pool.Load(); p.ramping() || p.sched != nil {
		t.Fatalf("effective weights %v after startup, want all full", p.effective)
	}
	// An instance registered later ramps up.
	late := discovery.Instance{ID: "d", Address: "127.0.0.1:9100"}
	g.SetServices(discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: append(all, late)}}},
		func(discovery.Service) Balancing { return Balancing{SlowStart: time.Minute} })
	g.SetHealthy("web", append(all, late), false)
	p := g.services["web"].pool.Load()
	if _, eff := p.weightOf(p.upstreams[3]); eff != 0.1 {
		t.Fatalf("effective weight of the late instance = %v, want 0.1", eff)
	}
}

func TestSlowStartStepsRunOnTheirOwn(t *testing.T) {
	two := weighted(1, 1)
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.CloseIdleConnections)
	g.SetServices(discovery.Snapshot{}, func(discovery.Service) Balancing { return Balancing{} })
	g.SetServices(discovery.Snapshot{Services: []discovery.Service{{Name: "web"}}},
		func(discovery.Service) Balancing { return Balancing{SlowStart: 200 * time.Millisecond} })
	g.SetHealthy("web", two, false) // not found at startup: both ramp
	deadline := time.Now().Add(5 * time.Second)
	for g.services["web"].pool.Load().ramping() {
		if time.Now().After(deadline) {
			t.Fatal("still ramping 5s into a 200ms window")
		}
		time.Sleep(10 * time.Millisecond) // polling the published pool
	}
}
