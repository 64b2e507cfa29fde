// Package health owns the per-instance health state: the gateway's own
// active probes merged with the registry's view into one verdict per
// instance, with a reason in words.
package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/h1"
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
	// Client performs probes; nil uses a client without keep-alive, so every
	// probe proves the instance still accepts connections.
	Client *http.Client
	// OnProbe, when set, is called after every probe (from prober goroutines).
	OnProbe func(service, id string, latency time.Duration, err error)
	// OnTransition, when set, is called when an instance enters or leaves
	// rotation, with the Checker's lock held.
	OnTransition func(service, id string, routable bool, reason string)
}

// Checker probes every instance it is told about and publishes the routable
// set of each service. Safe for concurrent use.
type Checker struct {
	opt   Options
	merge string // opt.Defaults.Merge as given to New
	log   *slog.Logger

	mu        sync.Mutex
	ctx       context.Context // parent of all probers; set by Run
	services  map[string]map[string]*instanceState
	published map[string][]string // ids (and weights) last given to Setter, per service
	panic     map[string]bool     // services last published in panic mode
	started   bool                // Update was called at least once
	last      discovery.Snapshot  // the snapshot last applied
	pending   map[string]bool     // keys awaiting their first probe (readiness)
	wg        sync.WaitGroup
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
	if opt.Client == nil {
		opt.Client = &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			// Per-probe timeouts come from the request context.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Checker{
		opt:       opt,
		merge:     merge,
		log:       opt.Logger,
		services:  map[string]map[string]*instanceState{},
		published: map[string][]string{},
		panic:     map[string]bool{},
		pending:   map[string]bool{},
	}
}

// Run keeps probers running until ctx is done, then waits for them to stop.
// Update may be called before Run; probers start when Run starts.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	for _, insts := range c.services {
		for _, st := range insts {
			c.startLocked(st)
		}
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.wg.Wait()
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
	c.updateLocked(snap)
}

// SetDefaults replaces the global probe settings (configuration reload) and
// re-applies them to every known instance; instances keep their state.
// h.Merge is not read: the merge policy stays as given to New.
func (c *Checker) SetDefaults(h config.Health) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opt.Defaults = h
	if c.started {
		c.updateLocked(c.last)
	}
}

func (c *Checker) updateLocked(snap discovery.Snapshot) {
	c.last = snap
	first := !c.started
	c.started = true

	seen := make(map[string]bool, len(snap.Services))
	for _, svc := range snap.Services {
		seen[svc.Name] = true
		set, err := newSettings(svc.Health.Apply(c.opt.Defaults))
		if err != nil {
			c.log.Error("invalid health settings, using defaults", "service", svc.Name, "error", err)
			set, _ = newSettings(c.opt.Defaults)
		}
		insts := c.services[svc.Name]
		if insts == nil {
			insts = map[string]*instanceState{}
			c.services[svc.Name] = insts
		}
		keep := make(map[string]bool, len(svc.Instances))
		for _, in := range svc.Instances {
			keep[in.ID] = true
			st := insts[in.ID]
			switch {
			case st == nil:
				st = &instanceState{service: svc.Name, inst: in, set: set, probe: ProbeUnknown, since: time.Now()}
				if c.merge == config.MergeConsul {
					st.probe = ProbeDisabled
				}
				insts[in.ID] = st
				if first && st.probe != ProbeDisabled {
					c.pending[key(svc.Name, in.ID)] = true
				}
				c.startLocked(st)
			case st.inst.Address != in.Address:
				// Same id, new endpoint: its history says nothing about the new one.
				c.stopLocked(st)
				*st = instanceState{service: svc.Name, inst: in, set: set, probe: ProbeUnknown, since: time.Now()}
				if c.merge == config.MergeConsul {
					st.probe = ProbeDisabled
				}
				c.startLocked(st)
			default:
				st.inst = in
				if !st.set.equal(set) {
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
	for name, insts := range c.services {
		if seen[name] {
			continue
		}
		for id, st := range insts {
			c.stopLocked(st)
			delete(c.pending, key(name, id))
		}
		delete(c.services, name)
		delete(c.published, name)
		delete(c.panic, name)
		c.opt.Setter.SetHealthy(name, nil, false)
	}
}

// Ready reports whether the first probe round finished: every instance of
// the first snapshot has been probed at least once.
func (c *Checker) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started && len(c.pending) == 0
}

func key(service, id string) string { return service + "\x00" + id }

// startLocked launches the prober of st if Run has started and probes apply.
func (c *Checker) startLocked(st *instanceState) {
	if c.ctx == nil || st.stop != nil || st.probe == ProbeDisabled {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	st.stop = cancel
	c.wg.Add(1)
	service, inst, set := st.service, st.inst, st.set // copied under the lock
	go func() {
		defer c.wg.Done()
		c.probeLoop(ctx, service, inst, set)
	}()
}

func (c *Checker) stopLocked(st *instanceState) {
	st.stopEjectTimer()
	if st.stop != nil {
		st.stop()
		st.stop = nil
	}
}

// probeLoop probes at once, then every interval with jitter, until ctx ends.
// It reads only its arguments, never st, so it needs no lock until it records.
func (c *Checker) probeLoop(ctx context.Context, service string, in discovery.Instance, set settings) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		err := c.probe(ctx, in.Address, set)
		latency := time.Since(start)
		if ctx.Err() != nil {
			return // shutdown or removal, not a failed probe
		}
		if c.opt.OnProbe != nil {
			c.opt.OnProbe(service, in.ID, latency, err)
		}
		c.record(ctx, service, in.ID, err, latency)
		timer.Reset(jittered(set.Interval, set.jitter))
	}
}

func jittered(d time.Duration, frac float64) time.Duration {
	if frac <= 0 {
		return d
	}
	delta := float64(d) * frac
	return d + time.Duration((rand.Float64()*2-1)*delta)
}

// probe performs one HTTP check against addr.
func (c *Checker) probe(ctx context.Context, addr string, set settings) error {
	ctx, cancel := context.WithTimeout(ctx, set.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+set.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "switchyard-health/1")
	resp, err := c.opt.Client.Do(req)
	if err != nil {
		return probeError(err, set.Timeout)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !set.expect.Contains(resp.StatusCode) {
		return fmt.Errorf("status %d (want %s)", resp.StatusCode, set.ExpectedStatus)
	}
	return nil
}

// probeError shortens a transport error to what an operator needs, read
// by h1.Classify and h1.Reason as the gateway reads its own: "timeout
// after 2s", "connection refused", "no such host", "EOF". The error is
// kept underneath for errors.Is.
func probeError(err error, timeout time.Duration) error {
	if h1.Classify(err).Timeout() {
		return &shortError{fmt.Sprintf("timeout after %s", timeout), err}
	}
	return &shortError{h1.Reason(err), err}
}

// shortError says msg and wraps err.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

func (c *Checker) record(ctx context.Context, service, id string, err error, latency time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil {
		return // removed while the probe ran
	}
	st := c.services[service][id]
	if st == nil {
		return
	}
	st.record(err, latency, time.Now())
	delete(c.pending, key(service, id))
	if c.evalLocked(st) {
		c.publishLocked(service)
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
