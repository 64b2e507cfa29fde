package telemetry

import (
	"testing"
	"time"
)

func TestKeeperSharesTheRateFairlyAmongRoutes(t *testing.T) {
	k := newKeeper(10)
	now := time.Unix(1000, 0)
	// A route whose backend is down spends its whole burst at once.
	down := 0
	for range 100 {
		if k.allow("/down", reason5xx, now) {
			down++
		}
	}
	if down != 10 {
		t.Fatalf("first route alone: kept %d of 100, want the burst of 10", down)
	}
	// A second route gets its own share, not what /down left over.
	ok := 0
	for range 100 {
		if k.allow("/other", reasonSlow, now) {
			ok++
		}
	}
	if ok != 5 {
		t.Errorf("second route: kept %d, want its share of 5", ok)
	}
	// One second later each route has refilled its share only.
	now = now.Add(time.Second)
	down = 0
	for range 100 {
		if k.allow("/down", reason5xx, now) {
			down++
		}
	}
	if down != 5 {
		t.Errorf("after 1s: /down kept %d, want 5 (half of 10/s)", down)
	}
	if got := k.counts[reason5xx.first()][0].Load(); got != 15 {
		t.Errorf("5xx kept count %d, want 15", got)
	}
	if got := k.counts[reason5xx.first()][1].Load(); got != 185 {
		t.Errorf("5xx capped count %d, want 185", got)
	}
}

func TestReasonsAreCountedUnderTheFirst(t *testing.T) {
	for _, c := range []struct {
		r     reasons
		first string
		names int
	}{
		{reason5xx, "5xx", 1},
		{reasonNoHealthy | reason5xx, "no_healthy_instance", 2},
		{reasonRetry | reasonSlow, "retry", 2},
		{reasonSlow, "slow", 1},
	} {
		if got := reasonNames[c.r.first()]; got != c.first {
			t.Errorf("%b: first %q, want %q", c.r, got, c.first)
		}
		if n := len(c.r.names()); n != c.names {
			t.Errorf("%b: %d names, want %d", c.r, n, c.names)
		}
	}
}
