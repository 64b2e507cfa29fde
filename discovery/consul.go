package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http/httptrace"
	"reflect"
	"slices"
	"strings"
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
	// TLS). Every watch builds its own client from it, with a private
	// connection (see block); HttpClient is ignored and Transport, when set,
	// is cloned per watch.
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
	// Rate and Burst shape the token bucket of each watch: Burst requests
	// back to back, then Rate per second (4 and 4 when zero). Consul answers
	// a blocking query only when something changed, so the bucket only
	// matters when a server misbehaves or the registry churns.
	Rate  float64
	Burst int
	// Logger receives warnings (once per outage) and tag problems; nil uses
	// slog.Default().
	Logger *slog.Logger
}

// requestTimeout is the longest one blocking query may take: Consul adds
// up to wait/16 of jitter to the wait, and the answer needs time to travel.
// A query still open after this is hung and is abandoned.
func requestTimeout(wait time.Duration) time.Duration {
	return wait*17/16 + time.Second
}

// Consul watches Consul's catalog and the health of every opted-in service
// with blocking queries and publishes complete snapshots. It follows the
// blocking-query rules of Consul's own clients: an index that goes backwards
// starts over, an index of 0 is never used to block, an unchanged answer
// publishes nothing, every watch is rate-limited and backs off on errors,
// and every wait ends with the context.
//
// An error never changes the published snapshot: the last good answer of
// each watch stays in place until Consul answers again. A successful empty
// answer is authoritative: the service has no instances.
type Consul struct {
	opt     ConsulOptions
	log     *slog.Logger
	timeout time.Duration // per request

	mu         sync.Mutex
	synced     bool                // a complete snapshot was published
	failing    map[string]struct{} // watches whose last request failed
	lastErr    string
	errorSince time.Time
	lastGood   time.Time // start of the current outage
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
		opt.Rate = 4
	}
	if opt.Burst <= 0 {
		opt.Burst = 4
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	c := &Consul{
		opt:     opt,
		log:     opt.Logger,
		timeout: requestTimeout(opt.WaitTime),
		failing: map[string]struct{}{},
	}
	// Fail now, not in a retry loop, on settings that can never work
	// (unreadable TLS files, an unknown address scheme).
	_, closeIdle, err := c.newClient()
	if err != nil {
		return nil, err
	}
	closeIdle()
	return c, nil
}

// newClient builds the client of one watch: its own transport keeping at
// most one idle connection, so that consecutive queries of the watch run on
// the same connection for as long as the server keeps it. closeIdle
// releases that connection when the watch ends.
func (c *Consul) newClient() (client *api.Client, closeIdle func(), err error) {
	conf := *c.opt.Config
	base := conf.Transport
	if base == nil {
		base = api.DefaultConfig().Transport
	}
	tr := base.Clone()
	tr.MaxIdleConnsPerHost = 1 // one query at a time
	if path, ok := strings.CutPrefix(conf.Address, "unix://"); ok {
		// api.NewClient would replace the transport for a socket; dial it
		// from this one instead.
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		conf.Address, conf.Scheme = "localhost", "http"
	}
	hc, err := api.NewHttpClient(tr, conf.TLSConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("consul client: %w", err)
	}
	// Every request also carries a context deadline; this is the backstop.
	hc.Timeout = c.timeout
	conf.Transport, conf.HttpClient = tr, hc
	if client, err = api.NewClient(&conf); err != nil {
		return nil, nil, fmt.Errorf("consul client: %w", err)
	}
	return client, tr.CloseIdleConnections, nil
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

// event is what a watch tells Run. Exactly one of the groups is set.
type event struct {
	catalog map[string][]string // the catalog watch answered

	svc    *serviceWatch // a service watch answered (ok) or failed first
	insts  []Instance
	failed bool
}

// serviceWatch is one running blocking query on /v1/health/service/<name>.
// Its fields other than name and cancel are owned by Run.
type serviceWatch struct {
	name   string
	cancel context.CancelFunc

	reported bool       // answered or failed at least once
	have     bool       // insts holds a good answer
	insts    []Instance // last good answer, never modified
}

// Run watches until ctx is done and calls update with every changed
// complete snapshot. The first snapshot is published once the catalog and
// every watched service have answered (or failed) once; a service that
// never answered is absent rather than empty. Run returns ctx.Err().
func (c *Consul) Run(ctx context.Context, update func(Snapshot)) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: defers run last-in first-out
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	events := make(chan event)
	send := func(ctx context.Context, ev event) {
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watchCatalog(ctx, send)
	}()

	watches := map[string]*serviceWatch{}
	start := func(name string) {
		wctx, wcancel := context.WithCancel(ctx)
		w := &serviceWatch{name: name, cancel: wcancel}
		watches[name] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.watchService(wctx, w, send)
		}()
	}
	for name := range c.opt.Services {
		start(name)
	}

	var (
		catalog     map[string][]string
		haveCatalog bool
		tagWarnings = map[string]string{}
		published   *Snapshot
	)
	for {
		var ev event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-events:
		}
		switch {
		case ev.catalog != nil:
			catalog, haveCatalog = ev.catalog, true
			wanted := c.wanted(catalog)
			for name, w := range watches {
				if !wanted[name] {
					w.cancel()
					delete(watches, name)
				}
			}
			for name := range wanted {
				if watches[name] == nil {
					start(name)
				}
			}
		case ev.svc != nil:
			if watches[ev.svc.name] != ev.svc {
				continue // stopped while its answer was on the way
			}
			ev.svc.reported = true
			if !ev.failed {
				ev.svc.insts, ev.svc.have = ev.insts, true
			}
		}
		if !haveCatalog || !allReported(watches) {
			continue
		}
		snap := c.build(catalog, watches, tagWarnings)
		if published != nil && reflect.DeepEqual(*published, snap) {
			continue
		}
		update(snap)
		published = &snap
		c.markSynced()
	}
}

func allReported(watches map[string]*serviceWatch) bool {
	for _, w := range watches {
		if !w.reported {
			return false
		}
	}
	return true
}

// wanted returns the services to watch: those whose tags opt in and those
// the config file names.
func (c *Consul) wanted(catalog map[string][]string) map[string]bool {
	out := make(map[string]bool, len(c.opt.Services))
	for name := range c.opt.Services {
		out[name] = true
	}
	for name, tags := range catalog {
		if t, _ := parseTags(c.opt.TagPrefix, name, tags); t.Enabled {
			out[name] = true
		}
	}
	return out
}

// build assembles the snapshot from the last good answers. Services without
// one are left out: absent, not empty. Tag warnings are logged when they
// change (warned holds the last ones per service).
func (c *Consul) build(catalog map[string][]string, watches map[string]*serviceWatch, warned map[string]string) Snapshot {
	snap := Snapshot{Services: make([]Service, 0, len(watches))}
	for name, w := range watches {
		tags, warns := parseTags(c.opt.TagPrefix, name, catalog[name])
		if joined := strings.Join(warns, "; "); joined != warned[name] {
			for _, msg := range warns {
				c.log.Warn("consul tags: " + msg)
			}
			warned[name] = joined
		}
		if !w.have {
			continue
		}
		snap.Services = append(snap.Services, buildService(name, tags, w.insts, c.opt.Services[name]))
	}
	for name := range warned {
		if watches[name] == nil {
			delete(warned, name)
		}
	}
	// Instances come sorted from consulInstances; sorting only the services
	// keeps shared instance slices untouched.
	slices.SortFunc(snap.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return snap
}

// watchCatalog runs the blocking query on /v1/catalog/services and sends
// every changed answer (service name -> union of tags, sorted).
func (c *Consul) watchCatalog(ctx context.Context, send func(context.Context, event)) {
	var last map[string][]string
	c.block(ctx, "watching the catalog", func(client *api.Client, q *api.QueryOptions) (uint64, error) {
		services, meta, err := client.Catalog().Services(q)
		if err != nil {
			return 0, err
		}
		if services == nil {
			services = map[string][]string{}
		}
		for _, tags := range services {
			slices.Sort(tags)
		}
		if last != nil && maps.EqualFunc(last, services, slices.Equal) {
			return meta.LastIndex, nil // unchanged: nothing to rebuild
		}
		last = services
		send(ctx, event{catalog: services})
		return meta.LastIndex, nil
	}, nil)
}

// watchService runs the blocking query on /v1/health/service/<name> (every
// status, so the verdict can be explained) and sends every changed answer.
func (c *Consul) watchService(ctx context.Context, w *serviceWatch, send func(context.Context, event)) {
	var (
		last      []Instance
		delivered bool // an answer went to Run
		reported  bool // an answer or a failure went to Run
		lastWarns string
	)
	c.block(ctx, fmt.Sprintf("watching service %q", w.name), func(client *api.Client, q *api.QueryOptions) (uint64, error) {
		entries, meta, err := client.Health().Service(w.name, "", false, q)
		if err != nil {
			return 0, err
		}
		insts, warns := consulInstances(c.opt.TagPrefix, entries)
		if joined := strings.Join(warns, "; "); joined != lastWarns {
			for _, msg := range warns {
				c.log.Warn("consul: " + msg)
			}
			lastWarns = joined
		}
		if delivered && slices.Equal(last, insts) {
			return meta.LastIndex, nil // unchanged: nothing to rebuild
		}
		last, delivered, reported = insts, true, true
		send(ctx, event{svc: w, insts: insts})
		return meta.LastIndex, nil
	}, func() {
		if !reported {
			// Let the first snapshot go out without this service rather
			// than wait for a Consul that may not come back.
			reported = true
			send(ctx, event{svc: w, failed: true})
		}
	})
}

// block is the blocking-query loop of one watch. query performs one request
// with the watch's client and the given options, hands a changed answer on,
// and returns the index Consul answered with; onError, if not nil, is
// called after each failed request. block returns when ctx is done.
//
// An index means something only to the server that issued it. A query that
// blocks on it lands on a new connection when the old one died (Go's
// transport even retries a GET on a new connection by itself), and behind
// a new connection may be an agent restarted empty, whose index is lower:
// it would hold the query until it reaches the old index or the wait runs
// out, minutes during which the gateway misses every change. So a blocking
// query must run on the connection that carried the previous answer; on a
// new one it is abandoned and the watch asks afresh, without blocking.
func (c *Consul) block(ctx context.Context, what string, query func(*api.Client, *api.QueryOptions) (uint64, error), onError func()) {
	defer c.forget(what)
	var (
		client    *api.Client
		closeIdle func()
	)
	defer func() {
		if closeIdle != nil {
			closeIdle() // release the watch's connection
		}
	}()
	bucket := newTokenBucket(c.opt.Rate, c.opt.Burst)
	var (
		index     uint64 // 0: the next query answers at once
		failures  int
		checkConn = true // false once the server is seen to drop every connection
		afterMove bool   // the last blocking query was abandoned on a new connection
	)
	for {
		if !bucket.take(ctx) {
			return
		}
		if client == nil {
			var err error
			if client, closeIdle, err = c.newClient(); err != nil {
				failures++
				if !c.failed(ctx, what, err, failures, onError) {
					return
				}
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		var conn connSeen
		if index > 0 && checkConn {
			rctx = httptrace.WithClientTrace(rctx, conn.trace(cancel))
		}
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: c.opt.WaitTime}).WithContext(rctx)
		next, err := query(client, q)
		cancel()
		if ctx.Err() != nil {
			return // shutting down; not an error
		}
		if conn.fresh.Load() {
			if afterMove && !conn.reused.Load() {
				// Not even the connection of the fresh answer was kept:
				// the server closes every connection. Checking would
				// turn blocking into polling.
				checkConn = false
				c.log.Warn("consul closes its connection after every answer; an agent restarted empty may go unnoticed until wait_time runs out", "watch", what)
			}
			afterMove, index = true, 0
			continue
		}
		if conn.reused.Load() {
			afterMove = false
		}
		if err != nil {
			failures++
			// The server that answers next may not be the one that issued
			// index: its first answer must not block.
			index = 0
			if !c.failed(ctx, what, err, failures, onError) {
				return
			}
			continue
		}
		failures = 0
		c.ok(what)
		if next == 0 {
			next = 1 // never block on 0: it answers at once, forever
		}
		switch {
		case next < index:
			// Went backwards (the server's state was reset): its answer
			// stands, but the next query starts over without blocking.
			index = 0
		case next > index:
			index = next
		}
		// next == index: the wait ran out with nothing new; block again.
	}
}

// failed records a failed request and waits out the back-off; it reports
// false if ctx ended meanwhile.
func (c *Consul) failed(ctx context.Context, what string, err error, failures int, onError func()) bool {
	c.fail(what, err)
	if onError != nil {
		onError()
	}
	return sleep(ctx, backoff(c.opt.MinBackoff, c.opt.MaxBackoff, failures))
}

// connSeen records, through httptrace, the connections one request used.
type connSeen struct{ reused, fresh atomic.Bool }

// trace marks the connections and calls abort on a new one.
func (s *connSeen) trace(abort func()) *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if info.Reused {
			s.reused.Store(true)
			return
		}
		s.fresh.Store(true)
		abort()
	}}
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
