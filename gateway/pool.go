package gateway

import (
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
)

// Upstream is one routable instance. Immutable once in a pool, except for
// its counters.
type Upstream struct {
	Service string
	ID      string
	Address string // host:port

	// literal: the address's host is an IP address, which a dial does
	// not look up.
	literal bool

	// joined is when the instance joined rotation for slow start; zero
	// when it took its full weight at once.
	joined time.Time
	// fails counts consecutive failed attempts, for passive health.
	fails atomic.Int32
	// inflight counts attempts sent to the instance whose response has not
	// ended yet (least_request, admin).
	inflight atomic.Int64
}

// InFlight returns the number of requests the instance is serving now.
func (u *Upstream) InFlight() int64 { return u.inflight.Load() }

// pool is an immutable routable snapshot of one service with its pick
// counter. A new snapshot (health, weights, slow-start step) gets a new
// pool; the old one is dropped whole.
type pool struct {
	upstreams []*Upstream // drained (weight 0) instances are left out
	// weights are the configured weights and effective the ones in force
	// (slow start applied) in effectiveScale units, both by upstream index.
	weights   []int
	effective []int
	// sched is one weighted round-robin cycle of indices into upstreams;
	// nil when the effective weights are equal (plain round-robin).
	sched  []uint32
	policy policy
	panic  bool

	// next is the pick counter, alone on its cache line: every pick
	// writes it, and the fields above, read by every pick, must not
	// share a line that the other cores keep taking away.
	_    [64]byte
	next atomic.Uint64
	_    [56]byte
}

// effectiveScale is the resolution of effective weights: a configured
// weight w is w*effectiveScale in force, less while it ramps up.
const effectiveScale = 100

// poolSpec is everything besides the instances that shapes a pool.
type poolSpec struct {
	bal    Balancing
	panic  bool
	offset uint64 // the counter's start
	now    time.Time
	// fullWeight reports whether an instance that joins now takes its full
	// weight at once (no slow start); nil: every joining instance ramps
	// when slow start is on.
	fullWeight func(id string) bool
}

// newPool builds a pool. An instance that was already in prev keeps its
// Upstream (failure count, in-flight count, join time); one that (re)joins
// starts afresh.
func newPool(service string, instances []discovery.Instance, prev []*Upstream, spec poolSpec) *pool {
	p := &pool{policy: spec.bal.policy(), panic: spec.panic}
	kept := make(map[string]*Upstream, len(prev))
	for _, u := range prev {
		kept[u.ID] = u
	}
	for _, in := range instances {
		w := in.Share()
		if w == 0 {
			continue // drained: registered, but no traffic
		}
		u := kept[in.ID]
		if u == nil || u.Address != in.Address {
			u = &Upstream{Service: service, ID: in.ID, Address: in.Address, literal: ipLiteral(in.Address)}
			if spec.bal.SlowStart > 0 && (spec.fullWeight == nil || !spec.fullWeight(in.ID)) {
				u.joined = spec.now
			}
		}
		p.upstreams = append(p.upstreams, u)
		p.weights = append(p.weights, w)
		p.effective = append(p.effective, effectiveWeight(w, u.joined, spec.now, spec.bal.SlowStart))
	}
	p.sched = wrrSchedule(p.effective)
	p.next.Store(spec.offset)
	return p
}

// pick returns the upstream for a new request, or nil when the pool is
// empty. Round-robin, weighted or not, is one atomic add and no lock;
// nothing allocates. Safe for concurrent use. Plain round-robin is tested
// first and costs what it cost before weights.
func (p *pool) pick() *Upstream {
	if p.policy != roundRobin || p.sched != nil {
		return p.pickOther()
	}
	n := uint64(len(p.upstreams))
	if n == 0 {
		return nil
	}
	return p.upstreams[(p.next.Add(1)-1)%n]
}

// pickOther picks by least_request or by the weighted schedule.
func (p *pool) pickOther() *Upstream {
	if len(p.upstreams) == 0 {
		return nil
	}
	if p.policy == leastRequest {
		return p.pickLeast()
	}
	i := p.next.Add(1) - 1
	return p.upstreams[p.sched[i%uint64(len(p.sched))]]
}

// sample returns two upstream indices, each drawn with probability
// proportional to its effective weight, from one random number (32 bits
// each, mapped onto the range by multiplication).
func (p *pool) sample() (int, int) {
	r := rand.Uint64()
	hi, lo := r>>32, r&0xffffffff
	if p.sched == nil {
		n := uint64(len(p.upstreams))
		return int(hi * n >> 32), int(lo * n >> 32)
	}
	n := uint64(len(p.sched))
	return int(p.sched[hi*n>>32]), int(p.sched[lo*n>>32])
}

// retryPick returns the upstream to retry on after the ones in tried (the
// first being the pick): the next ones in pool order, without advancing
// the shared counter, so a dead instance does not shift every later request
// onto itself. Nil when every upstream was tried.
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

// weightOf returns the configured and effective weight of u in this pool
// (effective in configured units), or 0, 0 when u is not in it.
func (p *pool) weightOf(u *Upstream) (int, float64) {
	for i, x := range p.upstreams {
		if x == u {
			return p.weights[i], float64(p.effective[i]) / effectiveScale
		}
	}
	return 0, 0
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

	// Writer side, guarded by Gateway.mu.
	bal       Balancing
	instances []discovery.Instance // as last published by health
	// startup holds the ids of instances found at startup that have not
	// joined rotation yet: they take their full weight when they do.
	startup map[string]bool
	ramp    *time.Timer // pending slow-start step; nil when none
}

func randomOffset() uint64 { return rand.Uint64() }

// ipLiteral reports whether the host of the host:port address is an IP
// address.
func ipLiteral(address string) bool {
	_, err := netip.ParseAddrPort(address)
	return err == nil
}
