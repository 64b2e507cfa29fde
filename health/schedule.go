package health

import (
	"container/heap"
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
)

// A probeTask is the schedule of one instance's probes. The scheduler owns
// due, index, queued, running, removed and cancel (under scheduler.mu); the
// fields above them are set before the task is added and never change.
type probeTask struct {
	service string
	inst    discovery.Instance
	set     *settings
	phase   time.Duration // stable offset within the interval, from the id
	request []byte        // the probe request, written as is

	due     time.Time
	index   int  // in the heap while queued
	probed  bool // ran at least once: its next runs are paced
	queued  bool
	running bool
	removed bool
	cancel  context.CancelFunc // ends the probe in flight, if any
}

func newProbeTask(service string, in discovery.Instance, set *settings) *probeTask {
	return &probeTask{
		service: service,
		inst:    in,
		set:     set,
		phase:   phaseOf(service, in.ID, set.Interval),
		request: probeRequest(in.Address, set.Path),
	}
}

// phaseOf spreads instances evenly over the interval: the same instance
// always lands on the same offset, whatever the order it was added in.
func phaseOf(service, id string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(service))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(interval))
}

// nextDue is when a task probed at now runs again: on its phase, at least
// half an interval away, moved by up to ±jitter of the interval. The first
// gap after a new instance's immediate probe is thus between half and one
// and a half intervals; every later one is an interval, give or take jitter.
func nextDue(now time.Time, interval, phase time.Duration, jitter, r float64) time.Time {
	iv := int64(interval)
	earliest := now.UnixNano() + iv/2 - int64(phase)
	slot := (earliest/iv+1)*iv + int64(phase)
	if jitter > 0 {
		slot += int64((r*2 - 1) * jitter * float64(iv))
	}
	return time.Unix(0, slot)
}

// workerIdle is how long a probe worker waits for work before it exits.
const workerIdle = 30 * time.Second

// Pacing: repeat probes start at most paceHeadroom times the rate the
// intervals ask for, so that probes the process was too busy (or not
// scheduled) to start on time catch up gradually instead of in one burst.
// First probes are never held back.
const (
	paceHeadroom = 1.25
	paceBurst    = 20 * time.Millisecond // tokens saved up at most
	paceMinWait  = 2 * time.Millisecond  // the dispatcher sleeps at least this when out of tokens
)

// scheduler runs every instance's probes from one dispatching goroutine and
// a pool of at most max workers, started as the load needs them and ended
// when idle: no goroutine per instance. Tasks wait in a heap ordered by due
// time.
type scheduler struct {
	max       int
	idleAfter time.Duration                           // workerIdle, shorter in tests
	probe     func(ctx context.Context, t *probeTask) // runs one probe and records it

	mu      sync.Mutex
	queue   taskHeap
	rate    float64 // probes per second the tasks' intervals ask for
	tokens  float64 // repeat probes that may start now
	refill  time.Time
	workers int
	wake    chan struct{}     // cap 1: the head of the queue changed
	idle    []chan *probeTask // idle workers' inboxes (cap 1), the last freed last
	freed   chan struct{}     // cap 1: a worker became idle
	wg      sync.WaitGroup
}

func newScheduler(max int, probe func(context.Context, *probeTask)) *scheduler {
	return &scheduler{max: max, idleAfter: workerIdle, probe: probe, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
}

// add queues t to run at once, ahead of every repeat probe (which may be
// waiting for pacing). Safe for concurrent use; a task is added once.
func (s *scheduler) add(t *probeTask) {
	s.mu.Lock()
	t.due = time.Time{}
	s.rate += 1 / t.set.Interval.Seconds()
	heap.Push(&s.queue, t)
	first := t.index == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// remove stops t's probes: a queued task leaves the queue, a probe in
// flight is cancelled and its result dropped. Safe for concurrent use.
func (s *scheduler) remove(t *probeTask) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.removed {
		s.rate -= 1 / t.set.Interval.Seconds()
	}
	t.removed = true
	if t.queued {
		heap.Remove(&s.queue, t.index)
	}
	if t.cancel != nil {
		t.cancel()
	}
}

func (s *scheduler) poke() { signal(s.wake) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run dispatches due tasks until ctx ends, then waits for the workers.
func (s *scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t, wait := s.next(time.Now())
		if t != nil {
			if !s.dispatch(ctx, t) {
				break
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
			continue
		case <-timer.C:
			continue
		}
		break
	}
	s.wg.Wait()
}

// next pops the task due by now, or says how long until the next one is.
func (s *scheduler) next(now time.Time) (*probeTask, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, time.Hour
	}
	head := s.queue[0]
	if d := head.due.Sub(now); d > 0 {
		return nil, d
	}
	if head.probed {
		if wait := s.take(now); wait > 0 {
			return nil, wait
		}
	}
	heap.Pop(&s.queue)
	head.running = true
	return head, 0
}

// take spends a pacing token, or says how long until there is one. Called
// with s.mu held.
func (s *scheduler) take(now time.Time) time.Duration {
	r := s.rate * paceHeadroom
	if r <= 0 {
		return 0
	}
	s.tokens = min(s.tokens+r*now.Sub(s.refill).Seconds(), max(1, r*paceBurst.Seconds()))
	s.refill = now
	if s.tokens >= 1 {
		s.tokens--
		return 0
	}
	return max(time.Duration((1-s.tokens)/r*float64(time.Second)), paceMinWait)
}

// dispatch hands t to the worker freed last, starts one if fewer than max
// run, or waits for one. It reports false when ctx ended first. Handing
// work to the last freed worker lets the ones not needed idle out.
func (s *scheduler) dispatch(ctx context.Context, t *probeTask) bool {
	for {
		s.mu.Lock()
		if n := len(s.idle); n > 0 {
			inbox := s.idle[n-1]
			s.idle = s.idle[:n-1]
			s.mu.Unlock()
			inbox <- t // empty and buffered: never blocks
			return true
		}
		if s.workers < s.max {
			s.workers++
			s.mu.Unlock()
			s.wg.Add(1)
			go s.work(ctx, t)
			return true
		}
		s.mu.Unlock()
		select {
		case <-s.freed:
		case <-ctx.Done():
			s.finish(t, false)
			return false
		}
	}
}

// work runs first, then whatever the dispatcher hands over, until ctx ends
// or no work came for workerIdle.
func (s *scheduler) work(ctx context.Context, first *probeTask) {
	defer s.wg.Done()
	inbox := make(chan *probeTask, 1)
	idle := time.NewTimer(s.idleAfter)
	defer idle.Stop()
	for t := first; ; {
		s.runOne(ctx, t)
		s.mu.Lock()
		s.idle = append(s.idle, inbox)
		s.mu.Unlock()
		signal(s.freed)
		idle.Reset(s.idleAfter)
		select {
		case t = <-inbox:
		case <-ctx.Done():
			return
		case <-idle.C:
			s.mu.Lock()
			if i := slices.Index(s.idle, inbox); i >= 0 {
				s.idle = slices.Delete(s.idle, i, i+1)
				s.workers--
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			t = <-inbox // handed work just as the timer fired: it is on its way
		}
	}
}

func (s *scheduler) runOne(ctx context.Context, t *probeTask) {
	s.mu.Lock()
	if t.removed || ctx.Err() != nil {
		s.mu.Unlock()
		s.finish(t, false)
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	s.mu.Unlock()
	s.probe(pctx, t)
	cancel()
	s.finish(t, ctx.Err() == nil)
}

// finish ends a run of t: it is queued again for its next slot, or, when
// removed meanwhile (or requeue is false), dropped for good.
func (s *scheduler) finish(t *probeTask, requeue bool) {
	s.mu.Lock()
	t.running = false
	t.cancel = nil
	if t.removed || !requeue {
		s.mu.Unlock()
		return
	}
	t.probed = true
	t.due = nextDue(time.Now(), t.set.Interval, t.phase, float64(t.set.Jitter), rand.Float64())
	heap.Push(&s.queue, t)
	first := t.index == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// taskHeap orders tasks by due time (container/heap).
type taskHeap []*probeTask

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*probeTask)
	t.index, t.queued = len(*h), true
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index, t.queued = -1, false
	return t
}
