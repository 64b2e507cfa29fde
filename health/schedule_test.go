package health

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestNextDueLandsOnThePhaseAtLeastHalfAnIntervalAway(t *testing.T) {
	iv := 5 * time.Second
	base := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name  string
		now   time.Duration // after base, a multiple of iv
		phase time.Duration
	}{
		{"a phase just ahead is skipped for the one after", 0, 100 * time.Millisecond},
		{"a phase more than half an interval ahead is taken", 0, 3 * time.Second},
		{"a phase behind is taken in the next interval", 4 * time.Second, time.Second},
		{"phase zero", 1234 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := base.Add(tc.now)
			got := nextDue(now, iv, tc.phase, 0, 0.5)
			if off := time.Duration(got.UnixNano() % int64(iv)); off != tc.phase {
				t.Errorf("next due at offset %v in its interval, want the phase %v", off, tc.phase)
			}
			if gap := got.Sub(now); gap < iv/2 || gap >= iv*3/2 {
				t.Errorf("gap %v, want within [%v, %v)", gap, iv/2, iv*3/2)
			}
		})
	}
	// Jitter moves the slot by at most its share of the interval.
	for _, r := range []float64{0, 0.25, 0.999} {
		exact := nextDue(base, iv, time.Second, 0, r)
		got := nextDue(base, iv, time.Second, 0.1, r)
		if d := got.Sub(exact); d < -iv/10 || d > iv/10 {
			t.Errorf("jitter 10%% with r=%v moved the slot by %v", r, d)
		}
	}
}

// spread buckets offsets within interval into n buckets and returns the
// fullest bucket over the mean.
func spread(offsets []time.Duration, interval time.Duration, n int) float64 {
	counts := make([]int, n)
	for _, o := range offsets {
		counts[int(o*time.Duration(n)/interval)]++
	}
	max := 0
	for _, c := range counts {
		max = maxInt(max, c)
	}
	return float64(max) / (float64(len(offsets)) / float64(n))
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestPhasesOfTwentyThousandInstancesSpreadEvenlyOverTheInterval(t *testing.T) {
	iv := 5 * time.Second
	var offs []time.Duration
	for i := range 20000 {
		offs = append(offs, phaseOf(fmt.Sprintf("svc-%d", i/4), fmt.Sprintf("node-%d/svc-%d-%d", i%7, i/4, i%4), iv))
	}
	// 50 buckets of 100 ms hold 400 on average; Poisson noise is about 20.
	if r := spread(offs, iv, 50); r > 1.2 {
		t.Errorf("fullest 100 ms bucket holds %.2fx the mean, want <= 1.2x", r)
	}
}

// probeLog records when each task's probes start, for scheduler tests.
type probeLog struct {
	mu     sync.Mutex
	starts map[*probeTask]int
	signal chan *probeTask
}

func newProbeLog() *probeLog {
	return &probeLog{starts: map[*probeTask]int{}, signal: make(chan *probeTask, 1024)}
}

func (l *probeLog) probe(ctx context.Context, t *probeTask) {
	l.mu.Lock()
	l.starts[t]++
	l.mu.Unlock()
	select {
	case l.signal <- t:
	default:
	}
}

func (l *probeLog) count(t *probeTask) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.starts[t]
}

func runScheduler(t *testing.T, s *scheduler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func task(id string, interval time.Duration) *probeTask {
	return newProbeTask("svc", discovery.Instance{ID: id, Address: "127.0.0.1:1"}, func() *settings { s := newSettings(healthCfg(interval, 1, 1), config.Upstream{}); return &s }())
}

func TestSchedulerProbesANewTaskAtOnceAndNotAfterItsRemoval(t *testing.T) {
	log := newProbeLog()
	s := newScheduler(4, log.probe)
	runScheduler(t, s)

	slow := task("slow", time.Hour)
	s.add(slow)
	testenv.WaitFor(t, 5*time.Second, "the immediate probe of a task with a 1h interval", func() bool { return log.count(slow) == 1 })

	fast, control := task("fast", 5*time.Millisecond), task("control", 5*time.Millisecond)
	s.add(fast)
	s.add(control)
	testenv.WaitFor(t, 5*time.Second, "three probes of the fast task", func() bool { return log.count(fast) >= 3 })
	s.remove(fast)
	after := log.count(fast)
	base := log.count(control)
	testenv.WaitFor(t, 5*time.Second, "five more probes of the control task", func() bool { return log.count(control) >= base+5 })
	if n := log.count(fast); n != after {
		t.Errorf("the removed task was probed %d more times", n-after)
	}
	if n := log.count(slow); n != 1 {
		t.Errorf("the 1h task was probed %d times, want once", n)
	}
}

func TestSchedulerQueuesEveryTaskOnItsOwnPhase(t *testing.T) {
	log := newProbeLog()
	s := newScheduler(8, log.probe)
	runScheduler(t, s)
	iv := time.Hour // nothing runs twice during the test
	const n = 5000
	tasks := make([]*probeTask, n)
	for i := range tasks {
		tasks[i] = task(fmt.Sprintf("i-%d", i), iv)
		s.add(tasks[i])
	}
	testenv.WaitFor(t, 5*time.Second, "every first probe", func() bool {
		log.mu.Lock()
		probed := len(log.starts)
		log.mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		return probed == n && len(s.queue) == n
	})
	s.mu.Lock()
	offs := make([]time.Duration, 0, n)
	for _, tk := range s.queue {
		off := time.Duration(tk.due.UnixNano() % int64(iv))
		if tk.set.Jitter == 0 && off != tk.phase {
			t.Errorf("task %s queued at offset %v, want its phase %v", tk.inst.ID, off, tk.phase)
		}
		offs = append(offs, off)
	}
	s.mu.Unlock()
	// 20 buckets hold 250 on average.
	if r := spread(offs, iv, 20); r > 1.3 {
		t.Errorf("fullest bucket holds %.2fx the mean, want <= 1.3x", r)
	}
}

func TestFiveThousandInstancesNeedNoGoroutineEach(t *testing.T) {
	b := newFlippable(t)
	h := healthCfg(time.Hour, 1, 1)
	h.MaxConcurrentProbes = 16
	before := runtime.NumGoroutine()
	c, _ := start(t, Options{Defaults: h, Logger: slog.New(slog.DiscardHandler)})
	var snap discovery.Snapshot
	for i := range 1250 { // 1,250 services x 4 instances
		svc := discovery.Service{Name: fmt.Sprintf("svc-%04d", i)}
		for j := range 4 {
			svc.Instances = append(svc.Instances, discovery.Instance{ID: fmt.Sprintf("i-%d", j), Address: b.addr()})
		}
		snap.Services = append(snap.Services, svc)
	}
	c.Update(snap)
	testenv.WaitFor(t, 60*time.Second, "every instance probed once", c.Ready)
	// Workers, the dispatcher, the sweeper, the Run goroutine and the test
	// server's connection goroutines: bounded by the pool, not by 5,000.
	if extra := runtime.NumGoroutine() - before; extra > 16+40 {
		t.Errorf("%d goroutines more than before, with 5,000 instances and 16 workers", extra)
	}
	if n := b.probes.Load(); n != 5000 {
		t.Errorf("%d probes, want exactly one per instance", n)
	}
}

func TestRepeatProbesCatchUpAfterAStallWithoutABurst(t *testing.T) {
	s := newScheduler(4, nil)
	s.rate = 1000 // e.g. 5,000 instances every 5 s
	t0 := time.Unix(1_700_000_000, 0)
	s.refill = t0
	stalled := t0.Add(3 * time.Second) // the dispatcher did not run for 3 s
	started := 0
	for s.take(stalled) == 0 {
		started++
	}
	// 1.25 x 1000/s, with 20 ms saved up at most: 25 at once, not 3,000.
	if started != 25 {
		t.Errorf("%d repeat probes started at once after a stall, want 25", started)
	}
	wait := s.take(stalled)
	if wait < paceMinWait || wait > 10*time.Millisecond {
		t.Errorf("out of tokens, the dispatcher waits %v", wait)
	}
	// Over the next second the catch-up runs at 1.25x the rate.
	started = 0
	for now := stalled; now.Before(stalled.Add(time.Second)); now = now.Add(time.Millisecond) {
		for s.take(now) == 0 {
			started++
		}
	}
	if started < 1200 || started > 1300 {
		t.Errorf("%d repeat probes started in the second after a stall, want about 1,250", started)
	}
}

func TestANewInstanceGoesBeforeABacklogOfRepeatProbes(t *testing.T) {
	s := newScheduler(1, nil)
	now := time.Now()
	for i := range 100 { // late repeat probes, no pacing tokens left
		old := task(fmt.Sprintf("old-%d", i), time.Second)
		s.add(old)
		s.mu.Lock()
		heap.Remove(&s.queue, old.index)
		old.probed, old.due = true, now.Add(-time.Second)
		heap.Push(&s.queue, old)
		s.mu.Unlock()
	}
	s.refill = now
	fresh := task("new", time.Second)
	s.add(fresh)
	if got, _ := s.next(now); got != fresh {
		t.Fatalf("the dispatcher picked %v first, want the new instance", got.inst.ID)
	}
	if got, wait := s.next(now); got != nil || wait <= 0 {
		t.Errorf("a repeat probe ran without a pacing token (got %v, wait %v)", got, wait)
	}
}

func TestWorkersNotNeededAnyMoreExit(t *testing.T) {
	release := make(chan struct{})
	var running sync.WaitGroup
	s := newScheduler(32, func(ctx context.Context, t *probeTask) {
		if t.inst.ID != "steady" {
			running.Done()
			<-release
		}
	})
	s.idleAfter = 50 * time.Millisecond
	runScheduler(t, s)
	running.Add(20)
	for i := range 20 { // twenty probes in flight at once: twenty workers
		s.add(task(fmt.Sprintf("slow-%d", i), time.Hour))
	}
	running.Wait()
	close(release)
	s.add(task("steady", 5*time.Millisecond)) // one probe at a time from now on
	testenv.WaitFor(t, 5*time.Second, "idle workers to exit", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.workers <= 2
	})
}
