package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/discovery"
)

// watcher runs the Consul source and keeps its latest snapshot.
type watcher struct {
	addr  string
	meter *discovery.ConsulMeter
	start time.Time

	mu    sync.Mutex
	snap  discovery.Snapshot
	seen  time.Time     // when snap was published
	bump  chan struct{} // closed and replaced on every publication
	hooks []func(discovery.Snapshot, time.Time)

	evMu   sync.Mutex
	events []discovery.ConsulEvent // the source's trace (breakdown.go)
}

func startWatcher(ctx context.Context, addr string, budget int, noSummary bool, log *slog.Logger) (*watcher, error) {
	conf := api.DefaultConfig()
	conf.Address, conf.Scheme, conf.Token = addr, "http", ""
	w := &watcher{addr: addr, meter: &discovery.ConsulMeter{}, bump: make(chan struct{}), start: time.Now()}
	src, err := discovery.NewConsul(discovery.ConsulOptions{Config: conf, MaxConnections: budget, NoSummary: noSummary, Meter: w.meter, Logger: log, Trace: w.trace})
	if err != nil {
		return nil, err
	}
	go src.Run(ctx, w.publish)
	return w, nil
}

func (w *watcher) agentAddr() string { return w.addr }

func (w *watcher) trace(ev discovery.ConsulEvent) {
	w.evMu.Lock()
	w.events = append(w.events, ev)
	w.evMu.Unlock()
}

// traced returns the events traced since from.
func (w *watcher) traced(from time.Time) []discovery.ConsulEvent {
	w.evMu.Lock()
	defer w.evMu.Unlock()
	var out []discovery.ConsulEvent
	for _, ev := range w.events {
		if !ev.Acted.Before(from) {
			out = append(out, ev)
		}
	}
	return out
}

func (w *watcher) publish(s discovery.Snapshot) {
	now := time.Now()
	w.mu.Lock()
	w.snap, w.seen = s, now
	close(w.bump)
	w.bump = make(chan struct{})
	hooks := w.hooks
	w.mu.Unlock()
	for _, h := range hooks {
		h(s, now)
	}
}

// onSnapshot calls h with every later snapshot, from the publishing
// goroutine.
func (w *watcher) onSnapshot(h func(discovery.Snapshot, time.Time)) {
	w.mu.Lock()
	w.hooks = append(w.hooks, h)
	w.mu.Unlock()
}

// waitConverged waits until the snapshot holds exactly the catalog and
// returns the time from the start of the source.
func (w *watcher) waitConverged(c *catalog, timeout time.Duration) (time.Duration, error) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		snap, seen, bump := w.snap, w.seen, w.bump
		w.mu.Unlock()
		if matches(snap, c.want) {
			return seen.Sub(w.start), nil
		}
		select {
		case <-bump:
		case <-deadline:
			return 0, fmt.Errorf("not converged after %s (%d services seen)", timeout, len(snap.Services))
		}
	}
}

func matches(s discovery.Snapshot, want map[string][]string) bool {
	if len(s.Services) != len(want) {
		return false
	}
	for _, svc := range s.Services {
		ids := want[svc.Name]
		if len(ids) != len(svc.Instances) {
			return false
		}
		for i, in := range svc.Instances {
			if in.ID != ids[i] {
				return false
			}
		}
	}
	return true
}

// cost is what the source exchanged with the agent.
type cost struct {
	requests, in, out int64
}

// window measures d of activity (work, if not nil, runs meanwhile): the
// agent traffic per second and this process's CPU share of one core.
type window struct {
	d         time.Duration
	reqPerSec float64
	inPerSec  float64
	outPerSec float64
	cpu       float64 // fraction of one core
}

func (w *watcher) window(d time.Duration, work func(context.Context)) window {
	before, cpu0, t0 := meterNow(w.meter), cpuTime(), time.Now()
	if work != nil {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		work(ctx)
		cancel()
	} else {
		time.Sleep(d) // a measurement window, not synchronisation
	}
	after, cpu1, el := meterNow(w.meter), cpuTime(), time.Since(t0).Seconds()
	return window{
		d:         time.Since(t0),
		reqPerSec: float64(after.requests-before.requests) / el,
		inPerSec:  float64(after.in-before.in) / el,
		outPerSec: float64(after.out-before.out) / el,
		cpu:       (cpu1 - cpu0).Seconds() / el,
	}
}

func meterNow(m *discovery.ConsulMeter) cost {
	return cost{requests: m.Requests.Load(), in: m.BytesIn.Load(), out: m.BytesOut.Load()}
}
