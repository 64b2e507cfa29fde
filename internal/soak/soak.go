// Package soak drives constant-rate traffic through a running gateway while
// the instances behind it churn in Consul, and samples the gateway's
// resources. It talks only to loopback addresses and stops by itself: every
// loop is bounded by Options.Duration.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
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

// instance is one backend: an HTTP server on loopback registered in Consul.
type instance struct {
	id   string
	addr string
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startInstance(id, addr string) (*instance, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	in := &instance{id: id, addr: ln.Addr().String(), ln: ln, done: make(chan struct{})}
	in.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, id)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { in.srv.Serve(ln); close(in.done) }()
	return in, nil
}

// crash closes the listener and every connection at once, as a killed
// process would.
func (in *instance) crash() {
	in.srv.Close()
	<-in.done
}

func (in *instance) register(c *api.Client, service, prefix string) error {
	host, port, _ := net.SplitHostPort(in.addr)
	p, _ := strconv.Atoi(port)
	return c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: in.id, Name: service, Address: host, Port: p,
		Tags: []string{prefix + ".enable=true", prefix + ".path=/"},
		Check: &api.AgentServiceCheck{
			HTTP: "http://" + in.addr + "/health", Interval: "1s", Timeout: "1s",
			Status: api.HealthPassing,
		},
	})
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

	rep := Report{Events: map[string]int{}}
	var mu sync.Mutex // guards instances and rep.Events
	instances := map[string]*instance{}
	defer func() {
		for _, in := range instances {
			o.Consul.Agent().ServiceDeregister(in.id)
			in.crash()
		}
	}()
	for i := range o.Stable {
		in, err := startInstance(fmt.Sprintf("%s-stable-%d", o.Service, i), "")
		if err != nil {
			return rep, err
		}
		instances[in.id] = in
		if err := in.register(o.Consul, o.Service, o.TagPrefix); err != nil {
			return rep, err
		}
	}
	// Wait until the gateway routes to the stable set.
	if err := waitServing(ctx, o.GatewayURL); err != nil {
		return rep, err
	}

	var wg sync.WaitGroup
	start := time.Now()
	var sent, okN, failed, avoidable, dropped atomic.Int64
	var failMu sync.Mutex

	// Load: open loop at o.Rate, bounded concurrency.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	defer client.CloseIdleConnections()
	work := make(chan struct{}, 256)
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				sent.Add(1)
				err := get(client, o.GatewayURL+"/")
				if err == nil {
					okN.Add(1)
					continue
				}
				failed.Add(1)
				avoidable.Add(1) // the stable instances are always alive
				failMu.Lock()
				if len(rep.FirstFailures) < 10 {
					rep.FirstFailures = append(rep.FirstFailures, fmt.Sprintf("%s: %v", time.Since(start).Round(time.Millisecond), err))
				}
				failMu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		tick := time.NewTicker(time.Second / time.Duration(o.Rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case work <- struct{}{}:
				default:
					dropped.Add(1)
				}
			}
		}
	}()

	// Sampling.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(o.Sample)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s := Sample{At: time.Since(start).Round(time.Second), RSSKiB: rssKiB(o.GatewayPID), FDs: fds(o.GatewayPID), Goroutines: goroutines(client, o.AdminURL)}
				mu.Lock()
				rep.Samples = append(rep.Samples, s)
				mu.Unlock()
			}
		}
	}()

	// Churn: register, deregister, restart, in random order.
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	seq := 0
	tick := time.NewTicker(o.Churn)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		mu.Lock()
		var ephemeral []*instance
		for _, in := range instances {
			if !strings.Contains(in.id, "-stable-") {
				ephemeral = append(ephemeral, in)
			}
		}
		mu.Unlock()
		op := rng.IntN(3)
		if len(ephemeral) == 0 {
			op = 0
		}
		switch op {
		case 0: // a new instance registers
			seq++
			in, err := startInstance(fmt.Sprintf("%s-e%d", o.Service, seq), "")
			if err != nil {
				o.Log("start instance: %v", err)
				continue
			}
			if err := in.register(o.Consul, o.Service, o.TagPrefix); err != nil {
				o.Log("register %s: %v", in.id, err)
			}
			mu.Lock()
			instances[in.id] = in
			rep.Events["register"]++
			mu.Unlock()
		case 1: // an instance deregisters, then stops (a deploy)
			in := ephemeral[rng.IntN(len(ephemeral))]
			o.Consul.Agent().ServiceDeregister(in.id)
			in.crash()
			mu.Lock()
			delete(instances, in.id)
			rep.Events["deregister"]++
			mu.Unlock()
		case 2: // a registered instance crashes and restarts on its port
			in := ephemeral[rng.IntN(len(ephemeral))]
			addr := in.addr
			in.crash()
			again, err := startInstance(in.id, addr)
			mu.Lock()
			if err != nil {
				o.Log("restart %s: %v", in.id, err)
				o.Consul.Agent().ServiceDeregister(in.id)
				delete(instances, in.id)
			} else {
				instances[in.id] = again
			}
			rep.Events["restart"]++
			mu.Unlock()
		}
	}
	wg.Wait()
	rep.Sent, rep.OK, rep.Failed, rep.Avoidable, rep.Dropped = sent.Load(), okN.Load(), failed.Load(), avoidable.Load(), dropped.Load()
	return rep, nil
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

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func fds(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

func goroutines(c *http.Client, adminURL string) int {
	resp, err := c.Get(adminURL + "/api/v1/runtime")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Goroutines int `json:"goroutines"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Goroutines
}

// Trend compares the first and last third of the samples (after warm-up)
// and returns a description of any resource that keeps growing.
func Trend(s []Sample) []string {
	if len(s) < 9 {
		return nil
	}
	s = s[len(s)/10:]
	third := len(s) / 3
	first, last := s[:third], s[len(s)-third:]
	var out []string
	maxOf := func(xs []Sample, f func(Sample) int64) int64 {
		var m int64
		for _, x := range xs {
			m = max(m, f(x))
		}
		return m
	}
	mean := func(xs []Sample, f func(Sample) int64) int64 {
		var t int64
		for _, x := range xs {
			t += f(x)
		}
		return t / int64(len(xs))
	}
	rss := func(x Sample) int64 { return x.RSSKiB }
	if a, b := mean(first, rss), mean(last, rss); b > a+a*3/10+8<<10 {
		out = append(out, fmt.Sprintf("RSS mean %d KiB -> %d KiB", a, b))
	}
	gor := func(x Sample) int64 { return int64(x.Goroutines) }
	if a, b := maxOf(first, gor), maxOf(last, gor); b > a+a/2+20 {
		out = append(out, fmt.Sprintf("goroutines max %d -> %d", a, b))
	}
	fd := func(x Sample) int64 { return int64(x.FDs) }
	if a, b := maxOf(first, fd), maxOf(last, fd); b > a+a/2+20 {
		out = append(out, fmt.Sprintf("file descriptors max %d -> %d", a, b))
	}
	return out
}
