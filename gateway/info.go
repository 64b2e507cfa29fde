package gateway

import (
	"slices"
	"strings"

	"github.com/switchyard-gw/switchyard/config"
)

// BalanceInfo is the balancing state of one service, for the admin API.
type BalanceInfo struct {
	Service string `json:"service"`
	Policy  string `json:"policy"`
	// SlowStartSeconds is the slow-start window; 0 when off.
	SlowStartSeconds float64 `json:"slow_start_seconds"`
	// Instances are the routable ones (drained included), by id.
	Instances []InstanceLoad `json:"instances"`
}

// InstanceLoad is what balancing knows of one routable instance.
type InstanceLoad struct {
	ID string `json:"id"`
	// Weight is the configured weight (0: drained); EffectiveWeight the one
	// in force, less than Weight while the instance ramps up.
	Weight          int     `json:"weight"`
	EffectiveWeight float64 `json:"effective_weight"`
	InFlight        int64   `json:"in_flight"`
}

// Balance returns the balancing state of every service with a published
// pool, sorted by service. Safe for concurrent use; it takes the writers'
// lock, never the request path's.
func (g *Gateway) Balance() []BalanceInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]BalanceInfo, 0, len(g.services))
	for name, svc := range g.services {
		p := svc.pool.Load()
		if p == nil {
			continue
		}
		bi := BalanceInfo{Service: name, Policy: config.PolicyRoundRobin, SlowStartSeconds: svc.bal.SlowStart.Seconds(),
			Instances: make([]InstanceLoad, 0, len(svc.instances))}
		if p.policy == leastRequest {
			bi.Policy = config.PolicyLeastRequest
		}
		for _, in := range svc.instances {
			il := InstanceLoad{ID: in.ID, Weight: in.Share()}
			if i := slices.IndexFunc(p.upstreams, func(u *Upstream) bool { return u.ID == in.ID }); i >= 0 {
				il.EffectiveWeight = float64(p.effective[i]) / effectiveScale
				il.InFlight = p.upstreams[i].InFlight()
			}
			bi.Instances = append(bi.Instances, il)
		}
		out = append(out, bi)
	}
	slices.SortFunc(out, func(a, b BalanceInfo) int { return strings.Compare(a.Service, b.Service) })
	return out
}
