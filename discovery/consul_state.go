package discovery

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"time"
)

// pending is the read a service waits for.
type pending uint8

const (
	pendNone  pending = iota
	pendProbe         // queued in lo: index-only first
	pendFetch         // queued in hi: full read
)

// svcState is what Run knows of one watched service. Owned by Run's
// goroutine.
type svcState struct {
	name     string
	have     bool          // ans holds a good answer
	ans      serviceAnswer // last good answer, never modified
	reported bool          // answered or failed at least once
	pending  pending
	busy     bool   // a worker has its job
	again    bool   // a change was reported while busy: read again after
	sweep    uint64 // the sweep its queued read belongs to (0: none)
	failures int
	retryAt  time.Time // zero: no retry scheduled
	warns    string    // instance warnings last logged
	tagWarns string    // tag warnings last logged
	built    *Service  // what the snapshot holds; nil while !have
}

// run is the state of one Run. Only its loop goroutine touches it.
type run struct {
	c      *Consul
	update func(Snapshot)
	named  map[string]bool // services the config file names

	catalog     map[string][]string
	summaries   map[string]serviceSummary // nil: no detector reads summaries
	split       bool                      // a detector of its own reads summaries
	haveCatalog bool
	checks      map[string]failingCheck
	svcs        map[string]*svcState
	unreported  int
	hi, lo      []string // names waiting for a fetch, a probe
	probing     int      // probes with workers
	maxProbing  func() int

	// Sweeps: at most one runs; a catalog move during it asks for another.
	sweepID     uint64
	sweepLeft   int  // probes of the current sweep not yet answered
	sweepWanted bool // a catalog move awaits a sweep
	sweepFound  bool // the current sweep changed a service
	lastFound   bool // the last finished sweep did
	tokenPaid   bool // the next sweep's token was waited for
	bucket      *tokenBucket
	sweepTimer  *time.Timer
	retryTimer  *time.Timer
	retryDue    time.Time // when retryTimer fires

	dirty     bool       // a service's built value changed
	published []*Service // what the last snapshot was made of
	synced    bool
}

// newRun returns the state of one Run. maxProbing tells how many probes
// may be with workers at once: one per connection over HTTP/1.1, so that
// a fetch never queues behind a sweep for a connection; more over HTTP/2.
func (c *Consul) newRun(update func(Snapshot), maxProbing func() int) *run {
	named := make(map[string]bool, len(c.opt.Services))
	for name := range c.opt.Services {
		named[name] = true
	}
	return &run{
		c: c, update: update, named: named, maxProbing: maxProbing,
		svcs:      map[string]*svcState{},
		bucket:    newTokenBucket(c.opt.Rate, c.opt.Burst),
		lastFound: true, // the first sweep is never held back
	}
}

// onCatalog follows a catalog answer: services that left stop being
// watched, new ones are fetched, tag changes rebuild, and a sweep looks for
// the instance changes the answer cannot show.
func (r *run) onCatalog(ev catalogEvent) {
	if ev.summaryOnly {
		r.onSummary(ev)
		return
	}
	first := !r.haveCatalog
	changed := catalogDiff(r.catalog, ev.services)
	var moved []string
	if !r.split {
		moved = summaryDiff(r.summaries, ev.summaries)
		r.summaries = ev.summaries
	}
	r.catalog, r.haveCatalog = ev.services, true
	// Whether a service is watched depends only on its own tags, so after
	// the first answer only the services whose tags changed (or that
	// appeared or left) can start or stop being watched: the tags of every
	// service are not read again on every answer.
	if first {
		for name := range wantedServices(r.c.opt.TagPrefix, r.catalog, r.named) {
			r.watch(name)
		}
	} else {
		for _, name := range changed {
			want := r.named[name]
			if tags, ok := r.catalog[name]; ok && !want {
				t, _ := parseTags(r.c.opt.TagPrefix, name, tags)
				want = t.Enabled
			}
			switch s := r.svcs[name]; {
			case want && s == nil:
				r.watch(name)
			case !want && s != nil:
				r.remove(s)
			}
		}
	}
	for _, name := range changed {
		if s := r.svcs[name]; s != nil {
			// New tags or a service gone from the catalog (kept because
			// the config file names it): its instances changed too.
			r.rebuild(s)
			r.markFetch(s)
		}
	}
	r.fetchMoved(moved)
	if ev.timing != nil {
		kind := "catalog"
		if ev.summaries != nil {
			kind = "summary"
		}
		r.c.trace(ev.timing, kind, slices.Concat(changed, moved), time.Time{})
	}
	if first {
		ev.redundant <- false // every service is being fetched: nothing to sweep
		return
	}
	r.wantSweep(ev, len(changed) > 0 || len(moved) > 0)
}

// onSummary follows an answer of the summary detector while the catalog
// detector reads names and tags: services whose instances or check counts
// moved are fetched. Services it lists that the catalog answer does not
// (yet) are left to the catalog detector, which is the quicker.
func (r *run) onSummary(ev catalogEvent) {
	moved := summaryDiff(r.summaries, ev.summaries)
	r.summaries = ev.summaries
	r.fetchMoved(moved)
	r.c.trace(ev.timing, "summary", moved, time.Time{})
	if !r.haveCatalog {
		ev.redundant <- false // every service will be fetched: nothing to sweep
		return
	}
	r.wantSweep(ev, len(moved) > 0)
}

// fetchMoved fetches the watched services a summary names.
func (r *run) fetchMoved(moved []string) {
	for _, name := range moved {
		if s := r.svcs[name]; s != nil {
			r.markFetch(s) // an instance joined, left or moved, or a check count moved
		}
	}
}

// wantSweep asks for a sweep after a detector answer whose index moved,
// and tells the detector whether the answer was redundant: a sweep already
// waiting to start will see every instance change up to now, so an answer
// that named nothing adds nothing.
func (r *run) wantSweep(ev catalogEvent, named bool) {
	ev.redundant <- r.sweepWanted && !named
	r.sweepWanted = true
	r.startSweep()
}

// watch starts watching a service: it is fetched at once.
func (r *run) watch(name string) {
	s := &svcState{name: name}
	r.svcs[name] = s
	r.unreported++
	r.markFetch(s)
}

func (r *run) remove(s *svcState) {
	delete(r.svcs, s.name)
	if s.pending != pendNone && s.sweep == r.sweepID && r.sweepLeft > 0 {
		r.sweepDone() // its queued read will never be handed out
	}
	if !s.reported {
		r.unreported--
	}
	if s.built != nil {
		r.dirty = true
	}
	r.c.forget(svcWhat(s.name))
}

// onChecks re-fetches the services whose failing checks changed, and every
// service on a node whose node-level checks changed.
func (r *run) onChecks(ev checksEvent) {
	services, nodes := checksDiff(r.checks, ev.checks)
	r.checks = ev.checks
	for _, name := range services {
		if s := r.svcs[name]; s != nil {
			r.markFetch(s)
		}
	}
	if len(nodes) > 0 {
		for _, s := range r.svcs {
			for _, n := range s.ans.nodes {
				if _, ok := slices.BinarySearch(nodes, n); ok {
					r.markFetch(s)
					services = append(services, s.name)
					break
				}
			}
		}
	}
	r.c.trace(ev.timing, "checks", services, time.Time{})
}

// markFetch queues a full read of s, ahead of every probe.
func (r *run) markFetch(s *svcState) {
	switch {
	case s.busy:
		s.again = true
	case s.pending != pendFetch:
		s.pending = pendFetch
		r.hi = append(r.hi, s.name)
	}
}

// startSweep starts the wanted sweep unless one runs. A sweep after one that
// found nothing waits for a token first: only spurious sweeps are limited.
func (r *run) startSweep() {
	if !r.sweepWanted || r.sweepLeft > 0 || r.sweepTimer != nil {
		return
	}
	if !r.lastFound && !r.tokenPaid {
		if d := r.bucket.reserve(time.Now()); d > 0 {
			r.sweepTimer = time.NewTimer(d)
			return
		}
	}
	r.tokenPaid, r.sweepWanted, r.sweepFound = false, false, false
	r.sweepID++
	var probe []*svcState
	for _, s := range r.svcs {
		switch {
		case s.busy:
			s.again = true // its answer may predate the change
		case !s.have:
			r.markFetch(s) // no index to compare with
		case s.pending == pendNone:
			s.pending, s.sweep = pendProbe, r.sweepID
			probe = append(probe, s)
		}
	}
	// Most recently changed first: in a rolling deploy the instance that
	// leaves belongs to the service whose new instance just joined.
	slices.SortFunc(probe, func(a, b *svcState) int { return cmp.Compare(b.ans.index, a.ans.index) })
	for _, s := range probe {
		r.lo = append(r.lo, s.name)
	}
	r.sweepLeft += len(probe)
	if r.sweepLeft == 0 {
		r.endSweep()
	}
}

// sweepDone counts one read of the current sweep as answered.
func (r *run) sweepDone() {
	if r.sweepLeft--; r.sweepLeft == 0 {
		r.endSweep()
	}
}

func (r *run) endSweep() {
	r.lastFound = r.sweepFound
	r.startSweep()
}

// probeLimit is how many probes may be with workers at once. While the
// catalog detector reads summaries, which name the services whose
// instances moved, sweeps are only the backstop for what a summary cannot
// show (an instance replaced by another on the same node, an address
// change): they get half the probes, which leaves the agent's time and
// the fetch connections to the targeted fetches.
func (r *run) probeLimit() int {
	n := r.maxProbing()
	if r.summaries != nil && !r.c.summaryOff.Load() && n > 1 {
		n = (n + 1) / 2
	}
	return n
}

// next returns the job to hand out: fetches first, then probes.
func (r *run) next() (job, bool) {
	for len(r.hi) > 0 {
		if s := r.svcs[r.hi[0]]; s != nil && s.pending == pendFetch {
			return job{name: s.name, sweep: s.sweep}, true
		}
		r.hi = r.hi[1:]
	}
	for len(r.lo) > 0 && r.probing < r.probeLimit() {
		if s := r.svcs[r.lo[0]]; s != nil && s.pending == pendProbe {
			return job{name: s.name, probe: true, index: s.ans.index, sweep: s.sweep}, true
		}
		r.lo = r.lo[1:]
	}
	return job{}, false
}

// dispatched records that a worker took j.
func (r *run) dispatched(j job) {
	if j.probe {
		r.probing++
		r.lo = r.lo[1:]
	} else {
		r.hi = r.hi[1:]
	}
	s := r.svcs[j.name]
	s.pending, s.busy, s.sweep = pendNone, true, 0
}

// onResult applies a worker's answer. An error keeps the last good answer
// and schedules a retry with back-off; an empty answer is authoritative.
func (r *run) onResult(res jobResult) {
	if res.sweep != 0 && res.sweep == r.sweepID && r.sweepLeft > 0 {
		defer r.sweepDone() // after apply, which may mark the sweep found
	}
	if res.probe {
		r.probing--
	}
	s := r.svcs[res.name]
	if s == nil {
		return // no longer watched
	}
	s.busy = false
	if !s.reported {
		s.reported = true
		r.unreported--
	}
	if res.err != nil {
		s.failures++
		r.c.fail(svcWhat(s.name), res.err)
		s.retryAt = time.Now().Add(backoff(r.c.opt.MinBackoff, r.c.opt.MaxBackoff, s.failures))
		r.armRetry(s.retryAt)
		return
	}
	s.failures, s.retryAt = 0, time.Time{}
	r.c.ok(svcWhat(s.name))
	if res.fetched {
		r.apply(s, res.ans)
		r.c.trace(res.timing, "fetch", []string{s.name}, res.picked)
	}
	if s.again {
		s.again = false
		r.markFetch(s)
	}
}

// apply stores a good answer of s and rebuilds it.
func (r *run) apply(s *svcState, ans serviceAnswer) {
	if joined := strings.Join(ans.warns, "; "); joined != s.warns {
		for _, msg := range ans.warns {
			r.c.log.Warn("consul: " + msg)
		}
		s.warns = joined
	}
	if s.have && slices.Equal(s.ans.insts, ans.insts) {
		s.ans.index, s.ans.nodes = ans.index, ans.nodes
		return
	}
	s.ans, s.have = ans, true
	if r.rebuild(s) && r.sweepLeft > 0 {
		r.sweepFound = true
	}
}

// rebuild recomputes the snapshot value of s from its answer and the
// catalog tags; it reports whether the value changed. Tag warnings are
// logged when they change.
func (r *run) rebuild(s *svcState) bool {
	tags, warns := parseTags(r.c.opt.TagPrefix, s.name, r.catalog[s.name])
	if joined := strings.Join(warns, "; "); joined != s.tagWarns {
		for _, msg := range warns {
			r.c.log.Warn("consul tags: " + msg)
		}
		s.tagWarns = joined
	}
	if !s.have {
		return false
	}
	if r.split && !r.named[s.name] && !s.ans.typical {
		// Read from the unfiltered catalog, a name may be a proxy's or a
		// gateway's only (a sidecar copies its service's tags): it is
		// not a service to route until a typical instance comes back.
		if s.built == nil {
			return false
		}
		s.built, r.dirty = nil, true
		return true
	}
	svc := buildService(s.name, tags, s.ans.insts, r.c.opt.Services[s.name])
	if s.built != nil && reflect.DeepEqual(*s.built, svc) {
		return false
	}
	s.built, r.dirty = &svc, true
	return true
}

// publish sends a new snapshot when one is due: after the catalog and
// every watched service reported once, and whenever a service changed.
func (r *run) publish() {
	if !r.haveCatalog || r.unreported > 0 || (!r.dirty && r.synced) {
		return
	}
	var start time.Time
	if r.c.opt.Trace != nil {
		start = time.Now()
	}
	r.dirty = false
	cur := make([]*Service, 0, len(r.svcs))
	for _, s := range r.svcs {
		if s.built != nil {
			cur = append(cur, s.built)
		}
	}
	slices.SortFunc(cur, func(a, b *Service) int { return strings.Compare(a.Name, b.Name) })
	if r.synced && slices.Equal(cur, r.published) {
		return
	}
	snap := Snapshot{Services: make([]Service, len(cur))}
	for i, s := range cur {
		snap.Services[i] = *s
	}
	r.update(snap)
	if r.c.opt.Trace != nil {
		r.c.opt.Trace(ConsulEvent{Kind: "publish", Start: start, Acted: time.Now()})
	}
	r.published, r.synced = cur, true
	r.c.markSynced()
}

// onRetry queues a fetch of every failed service whose back-off ran out
// and sets the timer for the next one.
func (r *run) onRetry(now time.Time) {
	r.retryTimer = nil
	var first time.Time
	for _, s := range r.svcs {
		switch {
		case s.retryAt.IsZero():
		case !s.retryAt.After(now):
			s.retryAt = time.Time{}
			r.markFetch(s)
		case first.IsZero() || s.retryAt.Before(first):
			first = s.retryAt
		}
	}
	if !first.IsZero() {
		r.armRetry(first)
	}
}

// armRetry makes sure the retry timer fires by at.
func (r *run) armRetry(at time.Time) {
	if r.retryTimer != nil && !r.retryDue.After(at) {
		return
	}
	if r.retryTimer != nil {
		r.retryTimer.Stop()
	}
	r.retryTimer, r.retryDue = time.NewTimer(time.Until(at)), at
}

func (r *run) retryC() <-chan time.Time { return timerC(r.retryTimer) }
func (r *run) sweepC() <-chan time.Time { return timerC(r.sweepTimer) }

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func (r *run) stopTimers() {
	for _, t := range []*time.Timer{r.retryTimer, r.sweepTimer} {
		if t != nil {
			t.Stop()
		}
	}
}
