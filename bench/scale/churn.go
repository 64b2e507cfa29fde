package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/discovery"
)

// The kinds of change the churn makes, in turn.
const (
	kindRegister = iota
	kindDeregister
	kindCheck
	kindTags
	kinds
)

var kindNames = [kinds]string{"registration", "deregistration", "check status", "tag change"}

// churn makes changes at a steady rate and times each from just before
// its transaction until the first snapshot that shows it.
type churn struct {
	cat    *catalog
	client *api.Client
	w      *watcher

	mu       sync.Mutex
	pending  map[int]*change
	done     []latency
	present  map[int][]int   // service -> instance indexes registered
	critical map[string]bool // instance ID -> check critical
	next     int
	maxConns int
}

type change struct {
	kind     int
	service  string
	start    time.Time // just before the write
	returned time.Time // when the write returned (zero until then)
	shows    func(discovery.Snapshot) bool
}

// latency is one change's time to the snapshot, from just before its
// write, and the time its write took (the Raft commit is within it).
type latency struct {
	kind     int
	d, write time.Duration
	// For the breakdown (breakdown.go): the service changed, and when
	// the write started and returned and the snapshot showed it.
	service               string
	start, returned, seen time.Time
}

func newChurn(cat *catalog, client *api.Client, w *watcher) *churn {
	c := &churn{cat: cat, client: client, w: w, pending: map[int]*change{}, present: map[int][]int{}, critical: map[string]bool{}}
	w.onSnapshot(c.observe)
	return c
}

// observe completes the pending changes the snapshot shows.
func (c *churn) observe(s discovery.Snapshot, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.pending {
		if ch.shows(s) {
			write := ch.returned.Sub(ch.start)
			if ch.returned.IsZero() || ch.returned.After(at) {
				write = at.Sub(ch.start) // seen before the write returned
			}
			returned := ch.returned
			if returned.IsZero() || returned.After(at) {
				returned = at
			}
			c.done = append(c.done, latency{kind: ch.kind, d: at.Sub(ch.start), write: write,
				service: ch.service, start: ch.start, returned: returned, seen: at})
			delete(c.pending, id)
		}
	}
}

// run makes rate changes per second until ctx is done, each write on a
// goroutine of its own so that a slow write does not lower the rate.
func (c *churn) run(ctx context.Context, rate float64) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sample := time.NewTicker(500 * time.Millisecond)
	defer sample.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sample.C:
			c.maxConns = max(c.maxConns, establishedTo(c.w.agentAddr()))
		case <-tick.C:
			c.mu.Lock()
			k := c.next
			c.next++
			c.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.one(k); err != nil {
					log.Printf("churn: %v", err)
				}
			}()
		}
	}
}

// one makes change k: kinds in turn, each on a different service (the
// stride is prime, so k and k' < services apart never meet).
func (c *churn) one(k int) error {
	s := (k * 7919) % c.cat.services
	name := svcName(s)
	kind := k % kinds
	var (
		ops   api.TxnOps
		shows func(discovery.Snapshot) bool
	)
	insts := c.instancesOf(s)
	switch kind {
	case kindRegister:
		in := inst(s, c.cat.instances+k)
		ops, shows = in.setOps(), hasID(name, in.node+"/"+in.id, true)
		c.setPresent(s, append(insts, c.cat.instances+k))
	case kindDeregister:
		if len(insts) < 2 {
			return nil
		}
		in := inst(s, insts[0])
		ops, shows = api.TxnOps{in.deleteOp()}, hasID(name, in.node+"/"+in.id, false)
		c.setPresent(s, insts[1:])
	case kindCheck:
		in := inst(s, insts[0])
		id := in.node + "/" + in.id
		c.mu.Lock()
		c.critical[id] = !c.critical[id]
		if c.critical[id] {
			in.status = api.HealthCritical
		}
		c.mu.Unlock()
		ops, shows = api.TxnOps{in.checkOp()}, hasStatus(name, id, in.status)
	case kindTags:
		path := fmt.Sprintf("/p%d", k)
		for _, i := range insts {
			in := inst(s, i)
			in.tags = []string{tagOn, "switchyard.path=" + path}
			ops = append(ops, in.setOps()[0])
		}
		shows = hasPath(name, path)
	}
	ch := &change{kind: kind, service: name, start: time.Now(), shows: shows}
	c.mu.Lock()
	c.pending[k] = ch
	c.mu.Unlock()
	err := txn(c.client, ops)
	c.mu.Lock()
	ch.returned = time.Now()
	c.mu.Unlock()
	return err
}

func (c *churn) instancesOf(s int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if insts, ok := c.present[s]; ok {
		return slices.Clone(insts)
	}
	var out []int
	for i := range c.cat.instances {
		out = append(out, i)
	}
	return out
}

func (c *churn) setPresent(s int, insts []int) {
	c.mu.Lock()
	c.present[s] = insts
	c.mu.Unlock()
}

// wait gives the last changes up to timeout to show, and returns every
// latency measured.
func (c *churn) wait(timeout time.Duration) []latency {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a benchmark's tail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.done)
}

func (c *churn) missed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

func hasID(service, id string, want bool) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		svc, ok := s.Service(service)
		if !ok {
			return false
		}
		found := slices.ContainsFunc(svc.Instances, func(in discovery.Instance) bool { return in.ID == id })
		return found == want
	}
}

func hasStatus(service, id, status string) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		svc, _ := s.Service(service)
		i := slices.IndexFunc(svc.Instances, func(in discovery.Instance) bool { return in.ID == id })
		return i >= 0 && svc.Instances[i].Registry.Status == status
	}
}

func hasPath(service, path string) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		svc, _ := s.Service(service)
		return len(svc.Routes) == 1 && svc.Routes[0].PathPrefix == path
	}
}
