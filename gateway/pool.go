package gateway

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/switchyard-gw/switchyard/discovery"
)

// Upstream is one routable instance. Immutable once in a pool.
type Upstream struct {
	Service string
	ID      string
	Address string // host:port
}

// pool is an immutable healthy snapshot of one service with its round-robin
// counter. A new snapshot gets a new pool; the old one is dropped whole.
type pool struct {
	upstreams []*Upstream
	next      atomic.Uint64
}

func newPool(service string, instances []discovery.Instance, offset uint64) *pool {
	p := &pool{upstreams: make([]*Upstream, len(instances))}
	for i, in := range instances {
		p.upstreams[i] = &Upstream{Service: service, ID: in.ID, Address: in.Address}
	}
	p.next.Store(offset)
	return p
}

// pick returns the next upstream in round-robin order, or nil when the pool
// is empty. One atomic add, no lock, no allocation; safe for concurrent use.
func (p *pool) pick() *Upstream {
	n := uint64(len(p.upstreams))
	if n == 0 {
		return nil
	}
	return p.upstreams[(p.next.Add(1)-1)%n]
}

// pickExcept returns the next upstream not in tried, or nil when every
// upstream was tried.
func (p *pool) pickExcept(tried []*Upstream) *Upstream {
	for range p.upstreams {
		u := p.pick()
		if !contains(tried, u) {
			return u
		}
	}
	return nil
}

func contains(list []*Upstream, u *Upstream) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

// service is the stable home of one service's current pool. Routes point at
// it, so a new healthy snapshot needs no new routing table.
type service struct {
	name string
	pool atomic.Pointer[pool] // nil until the health checker published
}

func randomOffset() uint64 { return rand.Uint64() }
