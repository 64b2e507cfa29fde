package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// fetchTimeout bounds one non-blocking request of a worker: it answers in
// milliseconds unless the agent is in trouble, and a hung one must not
// hold a worker for the whole blocking-query timeout.
const fetchTimeout = 30 * time.Second

// splitConnections is the smallest budget at which names and tags get a
// detector of their own beside the summary's. With fewer, that detector's
// connection would leave one to fetches and sweeps together, and targeted
// fetches queued behind sweeps (docs/consul-scale.md has the figures).
const splitConnections = 5

// workersPerConn is the number of fetch workers per fetch connection. Over
// HTTP/1.1 the extra ones queue in the transport for a connection; over
// HTTP/2 they are concurrent streams on one connection.
const workersPerConn = 8

// catalogEvent is an answer of the catalog detector whose index moved.
// Run replies on redundant, at once, whether the answer brought nothing
// new: the same services and tags while a sweep is already queued to look
// at instances. The detector takes a rate-limit token after a redundant
// answer, so a server reporting new indexes without news cannot make it
// spin, and a real change is never held back.
type catalogEvent struct {
	catalogAnswer
	redundant chan<- bool
	timing    *reqTiming // nil unless traced
	// summaryOnly marks an answer of the summary detector while a catalog
	// detector of its own reads names and tags: only its summaries count.
	summaryOnly bool
}

// checksEvent is an answer of the checks detector that changed.
type checksEvent struct {
	checks map[string]failingCheck
	timing *reqTiming // nil unless traced
}

// job is one request for a worker.
type job struct {
	name  string
	probe bool   // index-only first; a full fetch only when the index moved
	index uint64 // probe: the index of the last good answer
	sweep uint64 // probe: the sweep it belongs to
}

// jobResult is what a worker hands back.
type jobResult struct {
	job
	ans     serviceAnswer
	fetched bool // ans holds a full answer
	err     error
	timing  *reqTiming // the full read's, nil unless traced
	picked  time.Time  // when the worker took the job (traced only)
}

// Run watches until ctx is done and calls update with every changed
// complete snapshot. The first snapshot is published once the catalog and
// every watched service have answered (or failed) once; a service that
// never answered is absent rather than empty. Run returns ctx.Err(), or an
// error if its clients cannot be built.
func (c *Consul) Run(ctx context.Context, update func(Snapshot)) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: defers run last-in first-out
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The per-service summary names instance changes, but the agent
	// takes O(instances) to make each answer. Where the budget leaves two
	// connections to fetches, a third detector reads
	// /v1/catalog/services, several times cheaper, for names and tags:
	// new services, services gone and tag changes then do not wait for a
	// summary.
	split := !c.opt.NoSummary && c.opt.MaxConnections >= splitConnections
	fetchConns := c.opt.MaxConnections - 2
	if split {
		fetchConns--
	}
	client, err := c.newClient(clientSpec{name: "fetch", maxConns: fetchConns})
	if err != nil {
		return err
	}
	defer client.closeIdle()

	r := c.newRun(update, func() int {
		if client.multiplexed() {
			return fetchConns * workersPerConn / 2 // leave streams for fetches
		}
		return fetchConns
	})
	r.split = split
	catalogCh := make(chan catalogEvent)
	checksCh := make(chan checksEvent)
	jobs := make(chan job)
	results := make(chan jobResult)
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if split {
		spawn(func() { c.watchSummary(ctx, catalogCh) })
	}
	spawn(func() { c.watchCatalog(ctx, catalogCh, !split && !c.opt.NoSummary, split) })
	spawn(func() { c.watchChecks(ctx, checksCh) })
	for range fetchConns * workersPerConn {
		spawn(func() { c.worker(ctx, client, jobs, results) })
	}
	return r.loop(ctx, catalogCh, checksCh, jobs, results)
}

// watchCatalog runs the catalog detector: every answer whose index moved
// goes to Run. An answer at the same index (the wait ran out, an early
// wake-up) or one Run calls redundant is spurious and takes a token before
// the next query. With useUI it reads the per-service summary
// (consul_ui.go) until that endpoint is found absent or answers
// unexpectedly, and /v1/catalog/services from then on; without, only
// /v1/catalog/services.
func (c *Consul) watchCatalog(ctx context.Context, out chan<- catalogEvent, useUI, split bool) {
	var (
		gate answerGate
		dec  uiDecoder
	)
	c.block(ctx, "watching the catalog", func(client *api.Client, q *api.QueryOptions) (uint64, bool, error) {
		var (
			ans   catalogAnswer
			index uint64
			err   error
		)
		rctx, timing := c.timeRequest(q.Context())
		q = q.WithContext(rctx)
		if useUI {
			ans, index, err = fetchUIServices(client, q, &dec)
			if errors.Is(err, errUIUnusable) {
				useUI = false
				c.summaryOff.Store(true)
				c.log.Warn("consul: watching /v1/catalog/services instead; instances joining or leaving are found by sweeps", "reason", err.Error())
				q.WaitIndex, gate.have = 0, false // the indexes of another query
			}
		}
		if !useUI {
			// Beside a summary detector, the catalog is read without a
			// filter: a filter makes the agent join every instance with
			// its node, several times the cost. Proxies are left out
			// when fetched (run.rebuild).
			ans.services, index, err = fetchCatalog(client, q, !split)
		}
		if err != nil {
			return 0, false, err
		}
		timing.done()
		return gate.pass(ctx, out, index, catalogEvent{catalogAnswer: ans, timing: timing})
	}, nil)
}

// answerGate hands a detector's answers to Run: an answer at the index of
// the last one is spurious and goes no further; of a new one, Run says
// whether it was redundant (spurious too). pass returns what a block
// callback returns.
type answerGate struct {
	last uint64
	have bool
}

func (g *answerGate) pass(ctx context.Context, out chan<- catalogEvent, index uint64, ev catalogEvent) (uint64, bool, error) {
	if g.have && index == g.last {
		return index, false, nil
	}
	g.have, g.last = true, index
	redundant := make(chan bool, 1)
	ev.redundant = redundant
	select {
	case out <- ev:
	case <-ctx.Done():
		return index, true, nil
	}
	return index, !<-redundant, nil
}

// watchSummary runs the summary detector beside a catalog detector of its
// own: its answers go to Run for the instance changes they name, as
// watchCatalog's do. Where the summary is unusable it stops for the rest
// of the run, and sweeps find instance changes.
func (c *Consul) watchSummary(ctx context.Context, out chan<- catalogEvent) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		gate answerGate
		dec  uiDecoder
	)
	c.block(ctx, "watching the per-service summary", func(client *api.Client, q *api.QueryOptions) (uint64, bool, error) {
		rctx, timing := c.timeRequest(q.Context())
		ans, index, err := fetchUIServices(client, q.WithContext(rctx), &dec)
		if errors.Is(err, errUIUnusable) {
			c.summaryOff.Store(true)
			c.log.Warn("consul: not reading the per-service summary; instances joining or leaving are found by sweeps", "reason", err.Error())
			stop()
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		timing.done()
		ans.services = nil // names and tags are the catalog detector's
		return gate.pass(ctx, out, index, catalogEvent{catalogAnswer: ans, timing: timing, summaryOnly: true})
	}, nil)
}

// watchChecks runs the checks detector: every answer whose failing checks
// differ from the previous one goes to Run; an unchanged one (a passing
// check's output moved the index) is spurious.
func (c *Consul) watchChecks(ctx context.Context, out chan<- checksEvent) {
	var last map[string]failingCheck
	c.block(ctx, "watching checks", func(client *api.Client, q *api.QueryOptions) (uint64, bool, error) {
		rctx, timing := c.timeRequest(q.Context())
		checks, index, err := fetchFailingChecks(client, q.WithContext(rctx))
		if err != nil {
			return 0, false, err
		}
		timing.done()
		if last != nil && maps.Equal(last, checks) {
			return index, false, nil
		}
		last = checks
		select {
		case out <- checksEvent{checks: checks, timing: timing}:
		case <-ctx.Done():
		}
		return index, true, nil
	}, nil)
}

// worker performs jobs until ctx is done.
func (c *Consul) worker(ctx context.Context, client *consulClient, jobs <-chan job, results chan<- jobResult) {
	for {
		var j job
		select {
		case <-ctx.Done():
			return
		case j = <-jobs:
		}
		var picked time.Time
		if c.opt.Trace != nil {
			picked = time.Now()
		}
		res := c.do(ctx, client, j)
		res.picked = picked
		select {
		case results <- res:
		case <-ctx.Done():
			return
		}
	}
}

// do performs one job: a probe reads the service's index and fetches the
// service only when the index moved (backwards included: a reset agent).
func (c *Consul) do(ctx context.Context, client *consulClient, j job) jobResult {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if j.probe {
		index, err := fetchIndex(ctx, client.api, j.name)
		if err != nil || index == j.index {
			return jobResult{job: j, err: err}
		}
	}
	ctx, timing := c.timeRequest(ctx)
	ans, err := fetchService(ctx, client.api, c.opt.TagPrefix, j.name)
	if err != nil {
		return jobResult{job: j, err: err}
	}
	timing.done()
	return jobResult{job: j, ans: ans, fetched: true, timing: timing}
}

// loop is Run's event loop: the only goroutine that touches r.
func (r *run) loop(ctx context.Context, catalogCh <-chan catalogEvent, checksCh <-chan checksEvent, jobs chan<- job, results <-chan jobResult) error {
	defer r.stopTimers()
	for {
		next, ok := r.next()
		var out chan<- job
		if ok {
			out = jobs
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-catalogCh:
			r.onCatalog(ev)
		case ev := <-checksCh:
			r.onChecks(ev)
		case out <- next:
			r.dispatched(next)
		case res := <-results:
			r.onResult(res)
		case <-r.retryC():
			r.onRetry(time.Now())
		case <-r.sweepC():
			r.sweepTimer, r.tokenPaid = nil, true
			r.startSweep()
		}
		r.publish()
	}
}

// String names a job in logs and tests.
func (j job) String() string {
	if j.probe {
		return fmt.Sprintf("probe %q at %d (sweep %d)", j.name, j.index, j.sweep)
	}
	return fmt.Sprintf("fetch %q", j.name)
}
