package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Setter that remembers what was published per service.
type recorder struct {
	mu    sync.Mutex
	last  map[string][]string
	calls int
}

func (r *recorder) SetHealthy(service string, ins []discovery.Instance, panic bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string][]string{}
	}
	ids := []string{}
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	r.last[service] = ids
	r.calls++
}

func (r *recorder) healthy(service string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.last[service])
}

// flippable is a backend whose /health status can be changed.
type flippable struct {
	*httptest.Server
	status atomic.Int32
	probes atomic.Int32
}

func newFlippable(t *testing.T) *flippable {
	f := &flippable{}
	f.status.Store(200)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.probes.Add(1)
		w.WriteHeader(int(f.status.Load()))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flippable) addr() string { return strings.TrimPrefix(f.URL, "http://") }

func healthCfg(interval time.Duration, rise, fall int) config.Health {
	h := config.Default().Health
	h.Interval, h.Timeout, h.Jitter = interval, time.Second, 0
	h.HealthyThreshold, h.UnhealthyThreshold = rise, fall
	return h
}

func snapshot(svc string, ins ...discovery.Instance) discovery.Snapshot {
	return discovery.Snapshot{Services: []discovery.Service{{Name: svc, Instances: ins}}}
}

// start runs a checker until the test ends and waits for it to stop.
func start(t *testing.T, opt Options) (*Checker, *recorder) {
	rec := &recorder{}
	opt.Setter = rec
	c := New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, rec
}

func TestNewInstanceIsProbedAtOnceAndJoinsOnFirstPass(t *testing.T) {
	b := newFlippable(t)
	c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 2, 2)})
	if c.Ready() {
		t.Fatal("ready before the first snapshot")
	}
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: b.addr()}))
	testenv.WaitFor(t, 5*time.Second, "a in rotation", func() bool { return slices.Equal(rec.healthy("web"), []string{"a"}) })
	if !c.Ready() {
		t.Fatal("not ready after the first probe round")
	}
	if n := b.probes.Load(); n != 1 {
		t.Fatalf("%d probes with a 1h interval, want exactly the immediate one", n)
	}
}

func TestInstanceLeavesAfterUnhealthyThresholdAndRejoinsAfterHealthyThreshold(t *testing.T) {
	b := newFlippable(t)
	var mu sync.Mutex
	var transitions []string
	opt := Options{
		Defaults: healthCfg(10*time.Millisecond, 3, 2),
		OnTransition: func(service, id string, routable bool, reason string) {
			mu.Lock()
			transitions = append(transitions, reason)
			mu.Unlock()
		},
	}
	c, rec := start(t, opt)
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: b.addr()}))
	testenv.WaitFor(t, 5*time.Second, "a in rotation", func() bool { return len(rec.healthy("web")) == 1 })

	b.status.Store(500)
	testenv.WaitFor(t, 5*time.Second, "a out of rotation", func() bool { return len(rec.healthy("web")) == 0 })
	b.status.Store(200)
	testenv.WaitFor(t, 5*time.Second, "a back in rotation", func() bool { return len(rec.healthy("web")) == 1 })

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"in rotation: static, probe: passing (1 consecutive)",
		"probe: 2 consecutive failures, last: status 500 (want 200-399)",
		"in rotation: static, probe: passing (3 consecutive)",
	}
	if !slices.Equal(transitions, want) {
		t.Fatalf("transitions:\n%q\nwant\n%q", transitions, want)
	}
}

func TestStateIsKeptAcrossADiscoveryUpdateThatKeepsTheInstance(t *testing.T) {
	down := newFlippable(t)
	down.status.Store(503)
	other := newFlippable(t)
	c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 2, 2)})
	a := discovery.Instance{ID: "a", Address: down.addr()}
	c.Update(snapshot("web", a))
	testenv.WaitFor(t, 5*time.Second, "first probe of a", func() bool { return c.Ready() })
	c.Update(snapshot("web", a, discovery.Instance{ID: "b", Address: other.addr()}))
	testenv.WaitFor(t, 5*time.Second, "b in rotation", func() bool { return slices.Equal(rec.healthy("web"), []string{"b"}) })

	st := c.Services()[0].Instances[0]
	if st.ID != "a" || st.Probe.Status != ProbeDown || st.Probe.ConsecutiveFail != 1 {
		t.Fatalf("a after update = %+v, want its failing state kept", st.Probe)
	}
	if n := down.probes.Load(); n != 1 {
		t.Fatalf("a was probed %d times; an update must not restart its schedule", n)
	}
}

func TestRemovedInstanceLeavesRotationAtOnce(t *testing.T) {
	b1, b2 := newFlippable(t), newFlippable(t)
	c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 2, 2)})
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: b1.addr()}, discovery.Instance{ID: "b", Address: b2.addr()}))
	testenv.WaitFor(t, 5*time.Second, "both in rotation", func() bool { return len(rec.healthy("web")) == 2 })
	c.Update(snapshot("web", discovery.Instance{ID: "b", Address: b2.addr()}))
	// Update publishes synchronously: no wait.
	if got := rec.healthy("web"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("healthy = %v right after removal, want [b]", got)
	}
	c.Update(discovery.Snapshot{})
	if got := rec.healthy("web"); len(got) != 0 {
		t.Fatalf("healthy = %v after the service vanished, want none", got)
	}
}

func TestShutdownDuringAProbeIsNotAFailure(t *testing.T) {
	entered := make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer hung.Close()
	var failures atomic.Int32
	rec := &recorder{}
	h := healthCfg(time.Hour, 1, 1)
	h.Timeout = time.Hour
	c := New(Options{Defaults: h, Setter: rec, OnProbe: func(_, _ string, _ time.Duration, err error) {
		if err != nil {
			failures.Add(1)
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: strings.TrimPrefix(hung.URL, "http://")}))
	<-entered
	cancel()
	<-done
	if failures.Load() != 0 {
		t.Fatal("a probe cut by shutdown was counted as a failure")
	}
}

func TestMergeConsulStartsNoProbes(t *testing.T) {
	b := newFlippable(t)
	c, rec := start(t, Options{Defaults: withMerge(healthCfg(10*time.Millisecond, 1, 1), config.MergeConsul)})
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: b.addr(), Registry: discovery.RegistryHealth{Status: discovery.StatusPassing}}))
	if got := rec.healthy("web"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("healthy = %v, want [a] from consul alone", got)
	}
	if !c.Ready() {
		t.Fatal("not ready: with merge consul there is no probe round to wait for")
	}
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: b.addr(), Registry: discovery.RegistryHealth{Status: discovery.StatusCritical}}))
	if got := rec.healthy("web"); len(got) != 0 {
		t.Fatalf("healthy = %v after consul critical, want none", got)
	}
	if n := b.probes.Load(); n != 0 {
		t.Fatalf("%d probes sent with merge consul, want 0", n)
	}
}

// withMerge returns h with merge policy m.
func withMerge(h config.Health, m string) config.Health {
	h.Merge = m
	return h
}
