// Package soak drives constant-rate traffic through a running gateway while
// the instances behind it churn in Consul, and samples the gateway's
// resources. It talks only to loopback addresses and stops by itself: every
// loop is bounded by Options.Duration.
package soak

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Options configure a soak run.
type Options struct {
	GatewayURL string        // proxy base URL, e.g. http://127.0.0.1:8080
	AdminURL   string        // admin base URL, for /api/v1/runtime
	GatewayPID int           // sampled from /proc
	Consul     *api.Client   // where instances register
	Service    string        // Consul service name (tagged for the gateway)
	TagPrefix  string        // "switchyard"
	Duration   time.Duration // total run time
	Rate       int           // requests per second
	Stable     int           // instances that never churn (at least 1)
	Churn      time.Duration // time between churn events
	Sample     time.Duration // resource sampling period
	Log        func(format string, args ...any)
}

// Report is what a run measured.
type Report struct {
	Sent, OK, Failed int64
	// Avoidable counts failures while at least one registered instance was
	// alive: a gateway should have saved every one of them.
	Avoidable int64
	// Dropped counts ticks the driver itself could not send (all workers
	// busy): a load-side limit, not a gateway failure.
	Dropped       int64
	FirstFailures []string
	Events        map[string]int
	Samples       []Sample
}

// Sample is one observation of the gateway process.
type Sample struct {
	At         time.Duration
	RSSKiB     int64
	FDs        int
	Goroutines int
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d, ok %d, failed %d (avoidable %d), dropped by driver %d; churn events %v\n",
		r.Sent, r.OK, r.Failed, r.Avoidable, r.Dropped, r.Events)
	if n := len(r.Samples); n > 0 {
		f, l := r.Samples[0], r.Samples[n-1]
		fmt.Fprintf(&b, "gateway RSS %d->%d KiB, FDs %d->%d, goroutines %d->%d over %d samples\n",
			f.RSSKiB, l.RSSKiB, f.FDs, l.FDs, f.Goroutines, l.Goroutines, n)
	}
	for _, e := range r.FirstFailures {
		fmt.Fprintf(&b, "  failure: %s\n", e)
	}
	return b.String()
}

// Run drives the soak and returns its report. It stops every instance it
// started and deregisters them before returning.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Stable < 1 {
		o.Stable = 1
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	r := &run{o: o, instances: map[string]*instance{}, rep: Report{Events: map[string]int{}}}
	defer r.stopAll()
	if err := r.startStable(); err != nil {
		return r.rep, err
	}
	// Wait until the gateway routes to the stable set.
	if err := waitServing(ctx, o.GatewayURL); err != nil {
		return r.rep, err
	}

	r.start = time.Now()
	r.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	defer r.client.CloseIdleConnections()
	var wg sync.WaitGroup
	work := make(chan struct{}, 256)
	for range 128 {
		wg.Go(func() { r.send(work) })
	}
	wg.Go(func() { r.pace(ctx, work) })
	wg.Go(func() { r.sample(ctx) })
	r.churn(ctx)
	wg.Wait()
	r.rep.Sent, r.rep.OK, r.rep.Failed = r.sent.Load(), r.ok.Load(), r.failed.Load()
	r.rep.Avoidable, r.rep.Dropped = r.avoidable.Load(), r.dropped.Load()
	return r.rep, nil
}

// run is the state of one soak. The load, pacing and sampling goroutines
// and the churn loop (Run's own goroutine) share it.
type run struct {
	o      Options
	start  time.Time
	client *http.Client

	mu        sync.Mutex // guards instances, rep.Events and rep.Samples
	instances map[string]*instance
	rep       Report
	failMu    sync.Mutex // guards rep.FirstFailures

	sent, ok, failed, avoidable, dropped atomic.Int64
}

// startStable starts and registers the instances that never churn.
func (r *run) startStable() error {
	for i := range r.o.Stable {
		in, err := startInstance(fmt.Sprintf("%s-stable-%d", r.o.Service, i), "")
		if err != nil {
			return err
		}
		r.instances[in.id] = in
		if err := in.register(r.o.Consul, r.o.Service, r.o.TagPrefix); err != nil {
			return err
		}
	}
	return nil
}

// stopAll deregisters and stops every instance still running; it runs
// after every other goroutine of the run has ended.
func (r *run) stopAll() {
	for _, in := range r.instances {
		r.o.Consul.Agent().ServiceDeregister(in.id)
		in.crash()
	}
}

// send takes one request per token from work until work is closed.
func (r *run) send(work <-chan struct{}) {
	for range work {
		r.sent.Add(1)
		err := get(r.client, r.o.GatewayURL+"/")
		if err == nil {
			r.ok.Add(1)
			continue
		}
		r.failed.Add(1)
		r.avoidable.Add(1) // the stable instances are always alive
		r.failMu.Lock()
		if len(r.rep.FirstFailures) < 10 {
			r.rep.FirstFailures = append(r.rep.FirstFailures, fmt.Sprintf("%s: %v", time.Since(r.start).Round(time.Millisecond), err))
		}
		r.failMu.Unlock()
	}
}

// pace is the open loop: a token on work at o.Rate until ctx ends, then it
// closes work. A token no sender is free for is counted as dropped.
func (r *run) pace(ctx context.Context, work chan<- struct{}) {
	defer close(work)
	tick := time.NewTicker(time.Second / time.Duration(r.o.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			select {
			case work <- struct{}{}:
			default:
				r.dropped.Add(1)
			}
		}
	}
}

// sample records the gateway's resources every o.Sample until ctx ends.
func (r *run) sample(ctx context.Context) {
	tick := time.NewTicker(r.o.Sample)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			pid := r.o.GatewayPID
			s := Sample{At: time.Since(r.start).Round(time.Second), RSSKiB: rssKiB(pid), FDs: fds(pid), Goroutines: goroutines(r.client, r.o.AdminURL)}
			r.mu.Lock()
			r.rep.Samples = append(r.rep.Samples, s)
			r.mu.Unlock()
		}
	}
}

// churn registers, deregisters and restarts instances in random order,
// one event every o.Churn, until ctx ends. Stable instances are never
// touched; with no ephemeral instance the event is a registration.
func (r *run) churn(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(r.start.UnixNano()), 7))
	seq := 0
	tick := time.NewTicker(r.o.Churn)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ephemeral := r.ephemeral()
		op := rng.IntN(3)
		if len(ephemeral) == 0 {
			op = 0
		}
		switch op {
		case 0:
			seq++
			r.register(fmt.Sprintf("%s-e%d", r.o.Service, seq))
		case 1:
			r.deregister(ephemeral[rng.IntN(len(ephemeral))])
		case 2:
			r.restart(ephemeral[rng.IntN(len(ephemeral))])
		}
	}
}

func (r *run) ephemeral() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*instance
	for _, in := range r.instances {
		if !strings.Contains(in.id, "-stable-") {
			out = append(out, in)
		}
	}
	return out
}

// register starts a new instance and registers it.
func (r *run) register(id string) {
	in, err := startInstance(id, "")
	if err != nil {
		r.o.Log("start instance: %v", err)
		return
	}
	if err := in.register(r.o.Consul, r.o.Service, r.o.TagPrefix); err != nil {
		r.o.Log("register %s: %v", in.id, err)
	}
	r.mu.Lock()
	r.instances[in.id] = in
	r.rep.Events["register"]++
	r.mu.Unlock()
}

// deregister takes in out of Consul, then stops it (a deploy).
func (r *run) deregister(in *instance) {
	r.o.Consul.Agent().ServiceDeregister(in.id)
	in.crash()
	r.mu.Lock()
	delete(r.instances, in.id)
	r.rep.Events["deregister"]++
	r.mu.Unlock()
}

// restart crashes a registered instance and starts it again on its port;
// if the port cannot be taken again, the instance is deregistered.
func (r *run) restart(in *instance) {
	addr := in.addr
	in.crash()
	again, err := startInstance(in.id, addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.o.Log("restart %s: %v", in.id, err)
		r.o.Consul.Agent().ServiceDeregister(in.id)
		delete(r.instances, in.id)
	} else {
		r.instances[in.id] = again
	}
	r.rep.Events["restart"]++
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func waitServing(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	for {
		if err := get(c, url+"/"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway never served: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
