package discovery

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// Static is a Source with a fixed, replaceable snapshot: the static config
// provider, and the fake used by tests (Set publishes a new snapshot).
type Static struct {
	mu      sync.Mutex
	snap    Snapshot
	at      time.Time
	version uint64
	changed chan struct{} // closed and replaced on every Set
}

var _ Source = (*Static)(nil)

// NewStatic returns a source that publishes snap.
func NewStatic(snap Snapshot) *Static {
	return &Static{snap: Sort(snap), at: time.Now(), changed: make(chan struct{})}
}

// FromConfig builds the static snapshot of the services in c.
func FromConfig(c *config.Config) Snapshot {
	var s Snapshot
	for _, sc := range c.Services {
		svc := Service{Name: sc.Name, Health: sc.Health, Upstream: sc.Upstream(), LB: sc.LB}
		for _, in := range sc.Instances {
			inst := Instance{ID: in.ID, Address: in.Address}
			if in.Weight != nil {
				inst.Weight = WeightOf(*in.Weight)
			}
			svc.Instances = append(svc.Instances, inst)
		}
		s.Services = append(s.Services, svc)
	}
	return Sort(s)
}

// Set replaces the snapshot and publishes it to Run. Safe for concurrent use;
// snap must not be modified afterwards.
func (s *Static) Set(snap Snapshot) {
	s.mu.Lock()
	s.snap = Sort(snap)
	s.at = time.Now()
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Run publishes the current snapshot, then every Set, until ctx is done.
func (s *Static) Run(ctx context.Context, update func(Snapshot)) error {
	var seen uint64 = ^uint64(0)
	for {
		s.mu.Lock()
		snap, version, changed := s.snap, s.version, s.changed
		s.mu.Unlock()
		if version != seen {
			update(snap)
			seen = version
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Status reports the static source as always fresh.
func (s *Static) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Provider: config.ProviderStatic, LastSuccess: s.at}
}
