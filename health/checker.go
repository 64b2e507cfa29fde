// Package health owns the per-instance health state: the gateway's own
// active probes merged with the registry's view into one verdict per
// instance, with a reason in words.
package health

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// Setter receives the routable instances of a service whenever that set
// changes. It is called with the Checker's lock held and in order, so it must
// be quick and must not call back into the Checker. The slice is never
// modified afterwards and may be kept. A service that disappears from
// discovery gets one last call with a nil slice. panic is true when too few
// instances are routable (health.panic_threshold) and instances holds every
// known instance instead.
type Setter interface {
	SetHealthy(service string, instances []discovery.Instance, panic bool)
}

// Options configure a Checker. Only Setter is required.
type Options struct {
	// Defaults are the global health settings. Defaults.Merge
	// (config.MergeBoth when empty) is read here only: it decides which
	// instances are probed at all, so it is fixed for the Checker's life.
	Defaults      config.Health
	AcceptWarning bool
	Setter        Setter
	Logger        *slog.Logger // nil: slog.Default()
	// OnProbe, when set, is called after every probe (from the probe workers).
	OnProbe func(service, id string, latency time.Duration, err error)
	// OnTransition, when set, is called when an instance enters or leaves
	// rotation, with the Checker's lock held.
	OnTransition func(service, id string, routable bool, reason string)
}

// Checker probes every instance it is told about and publishes the routable
// set of each service. Safe for concurrent use. Probes run from one
// scheduler and at most Defaults.MaxConcurrentProbes workers, whatever the
// number of instances.
type Checker struct {
	opt   Options
	merge string // opt.Defaults.Merge as given to New
	log   *slog.Logger
	sched *scheduler
	pool  connPool

	mu        sync.Mutex
	ctx       context.Context // set by Run; nil: tasks wait for Run
	services  map[string]map[string]*instanceState
	published map[string][]string          // ids (and weights) last given to Setter, per service
	panic     map[string]bool              // services last published in panic mode
	started   bool                         // Update was called at least once
	last      discovery.Snapshot           // the snapshot last applied
	applied   map[string]discovery.Service // each service as last applied
	pending   map[string]bool              // keys awaiting their first probe (readiness)
}

// New returns a Checker. Call Run to start probing.
func New(opt Options) *Checker {
	merge := opt.Defaults.Merge
	if merge == "" {
		merge = config.MergeBoth
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	c := &Checker{
		opt:       opt,
		merge:     merge,
		log:       opt.Logger,
		services:  map[string]map[string]*instanceState{},
		published: map[string][]string{},
		panic:     map[string]bool{},
		pending:   map[string]bool{},
		applied:   map[string]discovery.Service{},
	}
	workers := opt.Defaults.MaxConcurrentProbes
	if workers < 1 {
		workers = config.Default().Health.MaxConcurrentProbes
	}
	c.sched = newScheduler(workers, c.runProbe)
	c.pool.maxIdle = workers
	return c
}

// Run probes until ctx is done, then waits for probes in flight to stop and
// closes the kept connections. Update may be called before Run; probes
// start when Run starts. Call Run once.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	for _, insts := range c.services {
		for _, st := range insts {
			c.startLocked(st)
		}
	}
	c.mu.Unlock()
	sweeper := make(chan struct{})
	go func() {
		defer close(sweeper)
		tick := time.NewTicker(idleTimeout / 4)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				c.pool.sweep(now)
			}
		}
	}()
	c.sched.run(ctx)
	<-sweeper
	c.pool.sweep(time.Time{})
	c.mu.Lock()
	for _, insts := range c.services {
		for _, st := range insts {
			st.stopEjectTimer()
		}
	}
	c.mu.Unlock()
}

// Update reconciles the checker with a complete discovery snapshot: new
// instances are probed at once, kept ones keep their state, removed ones
// leave rotation immediately.
func (c *Checker) Update(snap discovery.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updateLocked(snap, false)
}

// SetDefaults replaces the global probe settings (configuration reload) and
// re-applies them to every known instance; instances keep their state.
// h.Merge is not read: the merge policy stays as given to New.
func (c *Checker) SetDefaults(h config.Health) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opt.Defaults = h
	if c.started {
		c.updateLocked(c.last, true)
	}
}

// updateLocked applies snap. A service equal to the one last applied is
// skipped unless all is set (new settings): at thousands of services a
// discovery change touches one of them, not all.
func (c *Checker) updateLocked(snap discovery.Snapshot, all bool) {
	c.last = snap
	first := !c.started
	c.started = true

	seen := make(map[string]bool, len(snap.Services))
	for _, svc := range snap.Services {
		seen[svc.Name] = true
		if prev, ok := c.applied[svc.Name]; ok && !all && sameForHealth(prev, svc) {
			continue
		}
		c.applied[svc.Name] = svc
		c.applyServiceLocked(svc, first)
	}
	for name, insts := range c.services {
		if !seen[name] {
			c.forgetServiceLocked(name, insts)
		}
	}
}

// applyServiceLocked brings the instances of svc in line with it: new ones
// start probing (at once when first, the Checker's first snapshot), moved
// ones start over, changed settings restart their probes, and instances
// that left are stopped. It then publishes the service's healthy set.
func (c *Checker) applyServiceLocked(svc discovery.Service, first bool) {
	parsed := newSettings(svc.Health.Apply(c.opt.Defaults), svc.Upstream)
	insts := c.services[svc.Name]
	if insts == nil {
		insts = map[string]*instanceState{}
		c.services[svc.Name] = insts
	}
	set := &parsed // shared by the service's instances and their probe tasks
	for _, st := range insts {
		if st.set.equal(parsed) {
			set = st.set
		}
		break
	}
	keep := make(map[string]bool, len(svc.Instances))
	for _, in := range svc.Instances {
		keep[in.ID] = true
		st := insts[in.ID]
		switch {
		case st == nil:
			st = c.newState(svc.Name, in, set)
			insts[in.ID] = st
			if first && st.probe != ProbeDisabled {
				c.pending[key(svc.Name, in.ID)] = true
			}
			c.startLocked(st)
		case st.inst.Address != in.Address:
			// Same id, new endpoint: its history says nothing about the new one.
			c.stopLocked(st)
			*st = *c.newState(svc.Name, in, set)
			c.startLocked(st)
		default:
			st.inst = in
			if !st.set.equal(*set) {
				st.set = set
				c.stopLocked(st)
				c.startLocked(st)
			}
		}
		c.evalLocked(st)
	}
	for id, st := range insts {
		if !keep[id] {
			c.stopLocked(st)
			delete(insts, id)
			delete(c.pending, key(svc.Name, id))
			c.log.Info("instance removed", "service", svc.Name, "instance", id)
		}
	}
	c.publishLocked(svc.Name)
}

// newState is the state of an instance nothing is known about yet: probe
// result unknown, or disabled when Consul alone decides (merge "consul").
func (c *Checker) newState(service string, in discovery.Instance, set *settings) *instanceState {
	st := &instanceState{service: service, inst: in, set: set, probe: ProbeUnknown, since: time.Now()}
	if c.merge == config.MergeConsul {
		st.probe = ProbeDisabled
	}
	return st
}

// forgetServiceLocked stops the probes of a service that left discovery,
// drops everything kept about it and tells the Setter it has no instances.
func (c *Checker) forgetServiceLocked(name string, insts map[string]*instanceState) {
	for id, st := range insts {
		c.stopLocked(st)
		delete(c.pending, key(name, id))
	}
	delete(c.services, name)
	delete(c.applied, name)
	delete(c.published, name)
	delete(c.panic, name)
	c.opt.Setter.SetHealthy(name, nil, false)
}

// sameForHealth reports whether two versions of a service carry the same
// instances and health settings (routes do not matter here).
func sameForHealth(a, b discovery.Service) bool {
	return a.Name == b.Name && reflect.DeepEqual(a.Health, b.Health) && a.Upstream.Equal(b.Upstream) && reflect.DeepEqual(a.Instances, b.Instances)
}

// Ready reports whether the first probe round finished: every instance of
// the first snapshot has been probed at least once.
func (c *Checker) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started && len(c.pending) == 0
}

func key(service, id string) string { return service + "\x00" + id }

// startLocked schedules st's probes, the first at once, if Run has started
// and probes apply.
func (c *Checker) startLocked(st *instanceState) {
	if c.ctx == nil || st.task != nil || st.probe == ProbeDisabled {
		return
	}
	st.task = newProbeTask(st.service, st.inst, st.set)
	c.sched.add(st.task)
}

// stopLocked ends st's probes; a probe in flight is cancelled and not
// recorded.
func (c *Checker) stopLocked(st *instanceState) {
	st.stopEjectTimer()
	if st.task != nil {
		c.sched.remove(st.task)
		st.task = nil
	}
}

// runProbe is the scheduler's job: probe t once and record the result. It
// reads only t, never the instance state, until it records. Called from the
// probe workers.
func (c *Checker) runProbe(ctx context.Context, t *probeTask) {
	start := time.Now()
	err := c.probe(ctx, t)
	latency := time.Since(start)
	if ctx.Err() != nil {
		return // shutdown or removal, not a failed probe
	}
	if c.opt.OnProbe != nil {
		c.opt.OnProbe(t.service, t.inst.ID, latency, err)
	}
	c.record(t, err, latency)
}

func (c *Checker) record(t *probeTask, err error, latency time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.services[t.service][t.inst.ID]
	if st == nil || st.task != t {
		return // removed or restarted while the probe ran
	}
	st.record(err, latency, time.Now())
	delete(c.pending, key(t.service, t.inst.ID))
	if c.evalLocked(st) {
		c.publishLocked(t.service)
	}
}

// evalLocked recomputes st's verdict and reports whether routable changed.
func (c *Checker) evalLocked(st *instanceState) bool {
	routable, reason := verdict(st, c.merge, c.opt.AcceptWarning)
	st.reason = reason
	if routable == st.routable {
		return false
	}
	st.routable = routable
	st.since = time.Now()
	if routable {
		c.log.Info("instance joined rotation", "service", st.service, "instance", st.inst.ID, "address", st.inst.Address, "reason", reason)
	} else {
		c.log.Warn("instance left rotation", "service", st.service, "instance", st.inst.ID, "address", st.inst.Address, "reason", reason)
	}
	if c.opt.OnTransition != nil {
		c.opt.OnTransition(st.service, st.inst.ID, routable, reason)
	}
	return true
}

// publishLocked hands the routable set of service to the Setter if it changed.
func (c *Checker) publishLocked(service string) {
	insts := c.services[service]
	ids := make([]string, 0, len(insts))
	for id, st := range insts {
		if st.routable {
			ids = append(ids, id)
		}
	}
	panicMode := false
	if t := c.opt.Defaults.PanicThreshold; t > 0 && len(insts) > 0 && len(ids)*100 < t*len(insts) {
		// Too few left: spreading load over all beats crushing the few.
		panicMode = true
		ids = ids[:0]
		for id := range insts {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	keys := publishedKeys(insts, ids)
	if prev, ok := c.published[service]; ok && slices.Equal(prev, keys) && c.panic[service] == panicMode {
		return
	}
	if panicMode != c.panic[service] {
		if panicMode {
			c.log.Warn("panic mode: routing to every instance", "service", service, "instances", len(insts), "panic_threshold", c.opt.Defaults.PanicThreshold)
		} else {
			c.log.Info("panic mode over", "service", service)
		}
	}
	c.published[service] = keys
	c.panic[service] = panicMode
	healthy := make([]discovery.Instance, len(ids))
	for i, id := range ids {
		healthy[i] = insts[id].inst
	}
	c.opt.Setter.SetHealthy(service, healthy, panicMode)
}
