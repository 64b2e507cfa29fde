package gateway

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/switchyard-gw/switchyard/discovery"
)

// Upstream is one routable instance. Immutable once in a pool, except for
// its failure counter.
type Upstream struct {
	Service string
	ID      string
	Address string // host:port

	// fails counts consecutive failed attempts, for passive health.
	fails atomic.Int32
}

// pool is an immutable healthy snapshot of one service with its round-robin
// counter. A new snapshot gets a new pool; the old one is dropped whole.
type pool struct {
	upstreams []*Upstream
	panic     bool
	next      atomic.Uint64
}

// newPool builds a pool. An instance that was already in prev keeps its
// Upstream (and so its failure count); one that (re)joins starts afresh.
func newPool(service string, instances []discovery.Instance, prev []*Upstream, panic bool, offset uint64) *pool {
	p := &pool{upstreams: make([]*Upstream, len(instances)), panic: panic}
	kept := make(map[string]*Upstream, len(prev))
	for _, u := range prev {
		kept[u.ID] = u
	}
	for i, in := range instances {
		u := kept[in.ID]
		if u == nil || u.Address != in.Address {
			u = &Upstream{Service: service, ID: in.ID, Address: in.Address}
		}
		p.upstreams[i] = u
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

// retryPick returns the upstream to retry on after the ones in tried (the
// first being the round-robin pick): the next ones in pool order, without
// advancing the shared counter, so a dead instance does not shift every
// later request onto itself. Nil when every upstream was tried.
func (p *pool) retryPick(tried []*Upstream) *Upstream {
	n := len(p.upstreams)
	start := -1
	for i, u := range p.upstreams {
		if u == tried[0] {
			start = i
			break
		}
	}
	for k := 1; k <= n; k++ {
		u := p.upstreams[(start+k+n)%n]
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
	// proto is how to reach the instances; nil: HTTP/1.1 (protocol.go).
	proto atomic.Pointer[protoTransport]
}

func randomOffset() uint64 { return rand.Uint64() }
