package gateway

import (
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
)

// This file rebuilds a service's pool when its routable set, its
// balancing settings or a slow-start step changes. Everything here runs
// with Gateway.mu held; the request path only ever sees finished pools.

// SetServices gives the gateway the balancing settings of every service in
// a discovery snapshot; bal computes them for one service. Call it with
// every snapshot, before the health checker sees the snapshot, so that
// pools are built with the service's settings.
//
// The first call also records the instances found at startup: they take
// their full weight when they first join rotation, so restarting the
// gateway puts no instance into slow start. Instances that join later, and
// instances that return after leaving rotation, ramp up.
func (g *Gateway) SetServices(snap discovery.Snapshot, bal func(discovery.Service) Balancing) {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := !g.sawServices
	g.sawServices = true
	for _, s := range snap.Services {
		svc := g.serviceLocked(s.Name)
		if first {
			svc.startup = make(map[string]bool, len(s.Instances))
			for _, in := range s.Instances {
				if !svc.inPool(in.ID) { // already in rotation: nothing to decide
					svc.startup[in.ID] = true
				}
			}
		}
		b := bal(s)
		if b == svc.bal {
			continue
		}
		svc.bal = b
		if p := svc.pool.Load(); p != nil {
			g.publishLocked(svc, svc.instances, p.panic)
		}
	}
}

// publishLocked builds and stores the pool of svc from the routable
// instances, keeping the Upstreams of the current pool, and schedules the
// next slow-start step if an instance is still ramping up. It returns the
// upstreams of the pool it replaced.
func (g *Gateway) publishLocked(svc *service, instances []discovery.Instance, panic bool) []*Upstream {
	svc.instances = instances
	var prev []*Upstream
	if p := svc.pool.Load(); p != nil {
		prev = p.upstreams
	}
	next := newPool(svc.name, instances, prev, poolSpec{
		bal:        svc.bal,
		panic:      panic,
		offset:     g.offset(),
		now:        g.now(),
		fullWeight: func(id string) bool { return svc.startup[id] },
	})
	svc.pool.Store(next)
	for _, u := range next.upstreams {
		delete(svc.startup, u.ID) // joined: a second join is a return (drained ones stay startup)
	}
	if svc.ramp != nil {
		svc.ramp.Stop()
		svc.ramp = nil
	}
	if next.ramping() && !g.closed {
		svc.ramp = time.AfterFunc(rampStep(svc.bal.SlowStart), func() { g.rampTick(svc) })
	}
	return prev
}

// rampTick is one slow-start step: the pool is rebuilt with the effective
// weights of now.
func (g *Gateway) rampTick(svc *service) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	svc.ramp = nil
	if p := svc.pool.Load(); p != nil && p.ramping() {
		g.publishLocked(svc, svc.instances, p.panic)
	}
}

// stopRamps stops every pending slow-start step and schedules no more;
// pools published later keep the effective weights they were built with.
func (g *Gateway) stopRamps() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, svc := range g.services {
		if svc.ramp != nil {
			svc.ramp.Stop()
			svc.ramp = nil
		}
	}
}

// inPool reports whether id is in the current pool of svc.
func (svc *service) inPool(id string) bool {
	if p := svc.pool.Load(); p != nil {
		for _, u := range p.upstreams {
			if u.ID == id {
				return true
			}
		}
	}
	return false
}
