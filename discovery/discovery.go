// Package discovery tells the rest of the gateway which instances exist.
//
// A Source publishes complete snapshots: every service it knows with every
// instance, sorted, never deltas. A published Snapshot is a value that no one
// mutates afterwards, so it may be shared between goroutines freely.
package discovery

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// Registry health statuses, as Consul spells them. Static instances have
// StatusNone: the registry says nothing about their health.
const (
	StatusNone     = ""
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
	StatusMaint    = "maintenance"
)

// Instance is one network endpoint of a service.
type Instance struct {
	// ID is stable across updates for the same endpoint: the configured id
	// (static) or node/service-id (Consul). Health state is keyed by it.
	ID      string
	Address string // host:port
	// Registry is what the registry says about the instance's health.
	Registry RegistryHealth
	// Weight is the instance's share of its service's traffic relative to
	// the other instances. The zero value means DefaultWeight, so an
	// Instance built without one gets an equal share; WeightDrain keeps a
	// registered instance out of traffic (a configured weight of 0).
	// Read it through Share.
	Weight int
}

// Weight values with a meaning of their own.
const (
	DefaultWeight = 1
	WeightDrain   = -1
)

// Share returns the instance's weight for balancing: DefaultWeight when
// none was set, 0 when it is drained, never negative.
func (i Instance) Share() int {
	switch {
	case i.Weight == 0:
		return DefaultWeight
	case i.Weight < 0:
		return 0
	}
	return i.Weight
}

// WeightOf turns a configured weight (0 drains) into an Instance.Weight,
// capped at config.MaxWeight. DefaultWeight becomes 0, so instances compare
// equal however their default weight was reached.
func WeightOf(configured int) int {
	switch {
	case configured <= 0:
		return WeightDrain
	case configured == DefaultWeight:
		return 0
	}
	return min(configured, config.MaxWeight)
}

// RegistryHealth is the registry's aggregated verdict on an instance: the
// worst of its service and node checks.
type RegistryHealth struct {
	Status string
	// Check and Output describe the worst non-passing check, if any.
	Check  string
	Output string
	// AgentOnly is true when the status is not passing only because of
	// the node's gossip liveness check (Consul's serfHealth): every other
	// check of the instance and its node passes. That check judges the
	// Consul agent's membership, not the service, and flaps when gossip
	// does (a partition healing, an agent rejoining); with merge "both" a
	// passing probe of the instance outweighs it (health's verdict).
	AgentOnly bool
}

// Service is one service with all its instances, sorted by ID.
type Service struct {
	Name      string
	Instances []Instance
	// Routes requested by the registry (Consul tags); config routes are
	// added by the gateway and take precedence.
	Routes []config.Route
	// Health overrides the global probe settings for this service.
	Health *config.HealthOverride
	// Upstream is how to speak to the instances: from the config file
	// (static) or from tags (Consul; the config file's settings are laid
	// over them by the caller, see config.Upstream.Over).
	Upstream config.Upstream
	// LB is the balancing policy the registry asks for (tags); empty:
	// the configured one.
	LB config.LB
}

// Snapshot is the complete state of a source at one moment.
type Snapshot struct {
	Services []Service // sorted by Name
}

// Service returns the named service, or false.
func (s Snapshot) Service(name string) (Service, bool) {
	i, ok := slices.BinarySearchFunc(s.Services, name, func(a Service, n string) int {
		return strings.Compare(a.Name, n)
	})
	if !ok {
		return Service{}, false
	}
	return s.Services[i], true
}

// Status describes a source's freshness, for the admin API and /readyz.
type Status struct {
	Provider    string
	LastSuccess time.Time // zero until the first complete snapshot
	LastError   string    // empty while healthy
	ErrorSince  time.Time
}

// Source watches a registry and calls update with every new complete
// snapshot until ctx is done. Run returns ctx.Err() on cancellation, or an
// error that makes watching impossible (bad configuration).
//
// update is called from one goroutine at a time; it must not block for long
// and must not keep a reference it then mutates.
type Source interface {
	Run(ctx context.Context, update func(Snapshot)) error
	Status() Status
}

// Sort puts services and instances in canonical order, so equal sets compare
// equal. It sorts in place and returns s.
func Sort(s Snapshot) Snapshot {
	slices.SortFunc(s.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	for _, svc := range s.Services {
		slices.SortFunc(svc.Instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	}
	return s
}
