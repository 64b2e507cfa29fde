package health

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func passiveCfg(base time.Duration, maxPercent int) config.Health {
	h := healthCfg(time.Hour, 1, 1)
	h.Passive = config.Passive{ConsecutiveFailures: 5, BaseEjectionTime: base, MaxEjectionTime: 10 * base, MaxEjectionPercent: maxPercent}
	return h
}

func threeUp(t *testing.T, c *Checker, rec *recorder) {
	t.Helper()
	var ins []discovery.Instance
	for _, id := range []string{"a", "b", "c"} {
		ins = append(ins, discovery.Instance{ID: id, Address: newFlippable(t).addr()})
	}
	c.Update(snapshot("web", ins...))
	testenv.WaitFor(t, 5*time.Second, "three in rotation", func() bool { return len(rec.healthy("web")) == 3 })
}

func TestEjectedInstanceLeavesAndRejoinsAfterTheEjectionTime(t *testing.T) {
	c, rec := start(t, Options{Defaults: passiveCfg(50*time.Millisecond, 50)})
	threeUp(t, c, rec)
	if !c.Eject("web", "a", "5 consecutive failed requests, last: status 502") {
		t.Fatal("Eject refused")
	}
	if got := rec.healthy("web"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("healthy right after ejection = %v, want [b c]", got)
	}
	st := c.Services()[0].Instances[0]
	if st.Ejected == nil || st.Ejected.Ejections != 1 || !strings.Contains(st.Reason, "passive: ejected for 50ms (ejection 1) after 5 consecutive failed requests") {
		t.Fatalf("admin view = %+v reason %q", st.Ejected, st.Reason)
	}
	testenv.WaitFor(t, 5*time.Second, "a back after its ejection", func() bool { return len(rec.healthy("web")) == 3 })
	if st := c.Services()[0].Instances[0]; st.Ejected != nil || !st.Routable {
		t.Fatalf("after the ejection: %+v", st)
	}
}

func TestRepeatedEjectionsLastLonger(t *testing.T) {
	c, rec := start(t, Options{Defaults: passiveCfg(20*time.Millisecond, 50)})
	threeUp(t, c, rec)
	for want := 1; want <= 3; want++ {
		if !c.Eject("web", "a", "x") {
			t.Fatalf("ejection %d refused", want)
		}
		st := c.Services()[0].Instances[0]
		if st.Ejected.Ejections != want || !strings.Contains(st.Reason, (time.Duration(want)*20*time.Millisecond).String()) {
			t.Fatalf("ejection %d: %+v %q", want, st.Ejected, st.Reason)
		}
		testenv.WaitFor(t, 5*time.Second, "a back", func() bool { return len(rec.healthy("web")) == 3 })
	}
}

func TestEjectionNeverExceedsMaxEjectionPercent(t *testing.T) {
	c, rec := start(t, Options{Defaults: passiveCfg(time.Hour, 50)})
	threeUp(t, c, rec)
	if !c.Eject("web", "a", "x") {
		t.Fatal("first ejection refused")
	}
	if c.Eject("web", "b", "x") {
		t.Fatal("second of three ejected: more than 50% out")
	}
	if got := rec.healthy("web"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("healthy = %v, want [b c]", got)
	}
	if c.Eject("web", "a", "x") {
		t.Fatal("an instance already ejected was ejected again")
	}
}

func TestPanicThresholdRoutesToEveryInstanceWhenTooFewAreHealthy(t *testing.T) {
	h := healthCfg(10*time.Millisecond, 1, 1)
	h.PanicThreshold = 50
	rec := &recorder{}
	var panicked []bool
	c := New(Options{Defaults: withMerge(h, config.MergeConsul), Setter: setterFunc(func(s string, ins []discovery.Instance, p bool) {
		rec.SetHealthy(s, ins, p)
		panicked = append(panicked, p)
	})})
	in := func(id, status string) discovery.Instance {
		return discovery.Instance{ID: id, Address: "127.0.0.1:1", Registry: discovery.RegistryHealth{Status: status}}
	}
	c.Update(snapshot("web", in("a", "passing"), in("b", "passing"), in("c", "critical")))
	if got := rec.healthy("web"); !slices.Equal(got, []string{"a", "b"}) || panicked[len(panicked)-1] {
		t.Fatalf("2 of 3 healthy: %v panic=%v, want [a b] without panic", got, panicked)
	}
	c.Update(snapshot("web", in("a", "passing"), in("b", "critical"), in("c", "critical")))
	if got := rec.healthy("web"); !slices.Equal(got, []string{"a", "b", "c"}) || !panicked[len(panicked)-1] {
		t.Fatalf("1 of 3 healthy: %v panic=%v, want all three in panic mode", got, panicked)
	}
	if !c.Services()[0].Panic {
		t.Fatal("admin view does not show panic mode")
	}
}

type setterFunc func(string, []discovery.Instance, bool)

func (f setterFunc) SetHealthy(s string, ins []discovery.Instance, p bool) { f(s, ins, p) }
