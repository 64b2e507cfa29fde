package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/config"
)

// ConsulOptions configure a Consul source. Only Config is required; zero
// values get the documented defaults.
type ConsulOptions struct {
	// Config addresses the Consul agent (address, scheme, token, datacenter,
	// TLS). The source builds its own clients from it, all dialing through
	// one connection budget (see consul_conn.go); HttpClient is ignored and
	// Transport, when set, is cloned.
	Config *api.Config
	// TagPrefix prefixes the tags read ("switchyard" when empty).
	TagPrefix string
	// Services are watched whether or not their tags opt in: the services
	// and route targets the config file names. A non-nil override is the
	// service's health section from the config file; it wins over tags
	// field by field.
	Services map[string]*config.HealthOverride
	// WaitTime is the blocking-query wait (5m when zero).
	WaitTime time.Duration
	// MinBackoff and MaxBackoff bound the exponential back-off after
	// consecutive errors (250ms and 10s when zero).
	MinBackoff, MaxBackoff time.Duration
	// Rate and Burst shape the token buckets that hold back spurious work:
	// a blocking query that answered without news, a sweep that found
	// nothing. Burst at once, then Rate per second (10 and 10 when zero).
	// A real change never waits for a token; a spurious answer is cheap
	// (two detectors, small bodies), so the bucket is sized for bursts of
	// unrelated writes, not for one query per service as before.
	Rate  float64
	Burst int
	// MaxConnections caps the TCP connections to the agent, whatever the
	// size of the catalog (4 when zero; at least 3: one per change
	// detector and one for fetching).
	MaxConnections int
	// NoSummary makes the catalog detector watch /v1/catalog/services
	// instead of Consul's per-service summary (consul_ui.go): instances
	// joining or leaving are then found by sweeps only. For comparisons;
	// the detector falls back by itself where the summary is unusable.
	NoSummary bool
	// Meter, when not nil, counts requests and bytes exchanged with the
	// agent (for benchmarks).
	Meter *ConsulMeter
	// Trace, when not nil, receives the timings of detector answers,
	// fetches and snapshots (for benchmarks). It is called from the
	// source's goroutines and must be quick and safe for concurrent use.
	Trace func(ConsulEvent)
	// Logger receives warnings (once per outage) and tag problems; nil uses
	// slog.Default().
	Logger *slog.Logger
}

// MinConsulConnections is the smallest connection budget: one connection
// per change detector and one for the fetch workers.
const MinConsulConnections = 3

// requestTimeout is the longest one blocking query may take: Consul adds
// up to wait/16 of jitter to the wait, and the answer needs time to travel.
// A query still open after this is hung and is abandoned.
func requestTimeout(wait time.Duration) time.Duration {
	return wait*17/16 + time.Second
}

// Consul watches Consul's catalog and the health of every opted-in service
// within a fixed connection budget, and publishes complete snapshots.
//
// The design (docs/consul-scale.md has the figures): instead of one blocking
// query per service, which costs one connection per service over HTTP/1.1,
// two blocking "change detectors" watch the whole catalog:
//
//   - /v1/internal/ui/services (Consul's per-service summary: names, tags,
//     instance count, nodes and check counts; see consul_ui.go), or
//     /v1/catalog/services?filter=ServiceKind=="" where the summary is
//     absent or unusable (names and tags only),
//   - /v1/health/state/any?filter=Status!="passing" (the checks table; the
//     answer lists only failing checks, so it is small while the catalog is
//     healthy and names the service of every status change).
//
// A detector's answer is compared with its previous one: a service that
// appeared, left, changed its tags, had an instance join or leave (from a
// summary) or had a failing check change is re-fetched at once
// (/v1/health/service/<name>, high priority). Because no answer shows
// every change (a summary misses an instance replaced on the same node or
// a new address; the catalog answer misses every instance change), every
// move of the catalog detector's index also starts a sweep: for every
// watched service an index-only request (a filter that matches nothing,
// so the body is "[]") returns the service's own index, and only services
// whose index moved are re-fetched. Fetches and sweeps
// run on a bounded pool of workers sharing the remaining connections; over
// HTTPS the agent speaks HTTP/2 and they share one multiplexed connection.
//
// It follows the blocking-query rules of Consul's own clients: an index
// that goes backwards starts over, an index of 0 is never used to block,
// an unchanged answer publishes nothing, spurious answers and errors are
// rate-limited (real changes never are), errors back off exponentially, and
// every wait ends with the context.
//
// An error never changes the published snapshot: the last good answer of
// each service stays in place until Consul answers again. A successful
// empty answer is authoritative: the service has no instances.
type Consul struct {
	opt     ConsulOptions
	log     *slog.Logger
	timeout time.Duration // per request
	budget  *connBudget

	mu         sync.Mutex
	synced     bool                // a complete snapshot was published
	failing    map[string]struct{} // watches whose last request failed
	lastErr    string
	errorSince time.Time
	lastGood   time.Time // start of the current outage

	summaryOff atomic.Bool // the catalog detector fell back to /v1/catalog/services
}

var _ Source = (*Consul)(nil)

// NewConsul returns a Consul source. Call Run to start watching.
func NewConsul(opt ConsulOptions) (*Consul, error) {
	if opt.Config == nil {
		return nil, errors.New("consul source: no client configuration")
	}
	if opt.TagPrefix == "" {
		opt.TagPrefix = "switchyard"
	}
	if opt.WaitTime <= 0 {
		opt.WaitTime = 5 * time.Minute
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 250 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 10 * time.Second
	}
	if opt.Rate <= 0 {
		opt.Rate = 10
	}
	if opt.Burst <= 0 {
		opt.Burst = 10
	}
	if opt.MaxConnections == 0 {
		opt.MaxConnections = 4
	}
	if opt.MaxConnections < MinConsulConnections {
		return nil, fmt.Errorf("consul source: max connections %d, want at least %d", opt.MaxConnections, MinConsulConnections)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	c := &Consul{
		opt:     opt,
		log:     opt.Logger,
		timeout: requestTimeout(opt.WaitTime),
		budget:  newConnBudget(opt.MaxConnections, opt.Meter),
		failing: map[string]struct{}{},
	}
	// Fail now, not in a retry loop, on settings that can never work
	// (unreadable TLS files, an unknown address scheme).
	cl, err := c.newClient(clientSpec{name: "check", maxConns: 1})
	if err != nil {
		return nil, err
	}
	cl.closeIdle()
	return c, nil
}

// Status reports freshness. LastSuccess is the last moment the published
// snapshot was known to match Consul: now while every watch is healthy (its
// blocking query is open), the start of the outage while one is failing,
// zero before the first complete snapshot. Safe for concurrent use.
func (c *Consul) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Provider: config.ProviderConsul, LastError: c.lastErr, ErrorSince: c.errorSince}
	switch {
	case !c.synced:
	case len(c.failing) == 0:
		st.LastSuccess = time.Now()
	default:
		st.LastSuccess = c.lastGood
	}
	return st
}

func (c *Consul) fail(what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := fmt.Sprintf("%s: %v", what, err)
	if len(c.failing) == 0 {
		now := time.Now()
		c.errorSince, c.lastGood = now, now
		c.log.Warn("consul unreachable or failing; keeping the last known snapshot", "error", msg)
	} else if _, ok := c.failing[what]; !ok {
		c.log.Debug("consul watch failing", "error", msg)
	}
	c.failing[what] = struct{}{}
	c.lastErr = msg
}

func (c *Consul) ok(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked(what, true)
}

// forget drops a stopped watch from the failure set.
func (c *Consul) forget(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked(what, false)
}

func (c *Consul) clearLocked(what string, answered bool) {
	if _, ok := c.failing[what]; !ok {
		return
	}
	delete(c.failing, what)
	if len(c.failing) > 0 {
		return
	}
	if answered {
		c.log.Info("consul answering again", "outage", time.Since(c.errorSince).Round(time.Millisecond), "last_error", c.lastErr)
	}
	c.lastErr, c.errorSince = "", time.Time{}
}

func (c *Consul) markSynced() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced && len(c.failing) > 0 {
		c.lastGood = time.Now()
	}
	c.synced = true
}

// backoff returns the wait after the n-th consecutive failure: lo doubled
// per failure up to hi, of which the upper half is random so that many
// watches failing together do not retry in lockstep.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 32 {
		if e := lo << (n - 1); e > 0 && e < hi {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// tokenBucket limits one watch's request rate. Not safe for concurrent use:
// each watch owns one.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, burst int) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// reserve takes a token now, going into debt if there is none, and
// returns how long to wait before acting on it (0: at once).
func (b *tokenBucket) reserve(now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// take waits for a token; it reports false if ctx ended first.
func (b *tokenBucket) take(ctx context.Context) bool {
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	if !sleep(ctx, wait) {
		return false
	}
	b.tokens, b.last = 0, now.Add(wait)
	return true
}
