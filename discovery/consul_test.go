package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// These tests script a fake Consul for what a real agent will not do on
// demand. The fake blocks like Consul (a query whose index is current waits
// for a change or the wait time) unless a fault answers instead. Each case
// checks that the loop neither spins (an upper bound on requests in a
// window) nor forgets the last good snapshot, and that it recovers.

// fakeConsul serves /v1/catalog/services, /v1/health/state/any and
// /v1/health/service/<name>, all at one index. It ignores filters: the
// source must read answers right whatever a server does with them.
type fakeConsul struct {
	srv *httptest.Server

	mu       sync.Mutex
	index    uint64
	catalog  map[string][]string
	entries  map[string][]*api.ServiceEntry
	changed  chan struct{} // closed and replaced on every change
	fault    func(w http.ResponseWriter, r *http.Request) bool
	hits     map[string]int    // by watch: "catalog", "web", ...
	lastWait map[string]string // the index= of the latest query, by watch
}

func newFakeConsul(t *testing.T) *fakeConsul {
	f := &fakeConsul{
		index:    10,
		catalog:  map[string][]string{"consul": nil, "web": {"switchyard.enable=true"}},
		entries:  map[string][]*api.ServiceEntry{"web": {fakeEntry("web-1", 8001, "passing"), fakeEntry("web-2", 8002, "passing")}},
		changed:  make(chan struct{}),
		hits:     map[string]int{},
		lastWait: map[string]string{},
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func fakeEntry(id string, port int, status string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n1", Address: "127.0.0.1"},
		Service: &api.AgentService{ID: id, Service: "web", Port: port},
		Checks: api.HealthChecks{
			{Node: "n1", CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing"},
			{Node: "n1", CheckID: "service:" + id, Name: "web check", ServiceID: id, Status: status},
		},
	}
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	watch, ok := "catalog", r.URL.Path == "/v1/catalog/services"
	if r.URL.Path == "/v1/health/state/any" {
		watch, ok = "checks", true
	}
	if name, isSvc := strings.CutPrefix(r.URL.Path, "/v1/health/service/"); isSvc {
		watch, ok = name, true
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.hits[watch]++
	f.lastWait[watch] = r.URL.Query().Get("index")
	fault, idx, changed := f.fault, f.index, f.changed
	f.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}

	waitIdx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil {
		wait = 5 * time.Minute
	}
	if waitIdx != 0 && idx <= waitIdx {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}

	f.mu.Lock()
	var body any = f.catalog
	switch watch {
	case "catalog":
	case "checks":
		body = f.failingLocked()
	default:
		entries := f.entries[watch]
		if entries == nil {
			entries = []*api.ServiceEntry{}
		}
		body = entries
	}
	b, _ := json.Marshal(body)
	idx = f.index
	f.mu.Unlock()
	writeConsul(w, idx, b)
}

// failingLocked returns the checks of every entry that are not passing.
func (f *fakeConsul) failingLocked() api.HealthChecks {
	out := api.HealthChecks{}
	for name, entries := range f.entries {
		for _, e := range entries {
			for _, c := range e.Checks {
				if c.Status != api.HealthPassing {
					cc := *c
					if cc.ServiceID != "" {
						cc.ServiceName = name
					}
					out = append(out, &cc)
				}
			}
		}
	}
	return out
}

func writeConsul(w http.ResponseWriter, index uint64, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Consul-LastContact", "0")
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Write(body)
}

// change applies fn (if not nil) to the state at the next index and wakes
// blocked queries.
func (f *fakeConsul) change(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.applyLocked(fn)
}

// resetTo applies fn (if not nil) and sets the index, possibly lower than
// before (the server's state was reset), waking blocked queries as Consul
// does when it abandons its state store.
func (f *fakeConsul) resetTo(index uint64, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = index
	f.applyLocked(fn)
}

// restart replaces the state as an agent restarted empty would: a lower
// index, and every open connection cut. Blocked queries are not answered.
func (f *fakeConsul) restart(index uint64, fn func()) {
	f.mu.Lock()
	f.index = index
	if fn != nil {
		fn()
	}
	f.mu.Unlock()
	f.srv.CloseClientConnections()
}

func (f *fakeConsul) applyLocked(fn func()) {
	if fn != nil {
		fn()
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) setFault(fn func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.fault = fn
	f.mu.Unlock()
}

// counts returns the requests per watch since the last call.
func (f *fakeConsul) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.hits
	f.hits = map[string]int{}
	return out
}

func (f *fakeConsul) waitParam(watch string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastWait[watch]
}

// harness runs a Consul source against a fake and records what it publishes.
type harness struct {
	t    *testing.T
	src  *Consul
	logs *logRecorder

	mu    sync.Mutex
	snaps []Snapshot

	cancel context.CancelFunc
	done   chan error
}

func startSource(t *testing.T, f *fakeConsul, tweak func(*ConsulOptions)) *harness {
	t.Helper()
	conf := api.DefaultConfig()
	conf.Address, conf.Token = strings.TrimPrefix(f.srv.URL, "http://"), ""
	h := &harness{t: t, logs: &logRecorder{out: t.Output()}, done: make(chan error, 1)}
	opt := ConsulOptions{Config: conf, WaitTime: time.Minute, Logger: slog.New(h.logs)}
	if tweak != nil {
		tweak(&opt)
	}
	var err error
	if h.src, err = NewConsul(opt); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- h.src.Run(ctx, func(s Snapshot) {
			h.mu.Lock()
			h.snaps = append(h.snaps, s)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it; Run must return promptly.
func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run returned %v, want context.Canceled", err)
		}
		h.done <- err // stop is idempotent
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return within 5s of cancellation")
	}
}

// all returns every snapshot published so far.
func (h *harness) all() []Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.snaps)
}

// published returns the number of snapshots published and the latest.
func (h *harness) published() (int, Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.snaps) == 0 {
		return 0, Snapshot{}
	}
	return len(h.snaps), h.snaps[len(h.snaps)-1]
}

func (h *harness) waitSnapshot(what string, cond func(Snapshot) bool) Snapshot {
	h.t.Helper()
	var snap Snapshot
	testenv.WaitFor(h.t, 5*time.Second, what, func() bool {
		n, s := h.published()
		snap = s
		return n > 0 && cond(s)
	})
	return snap
}

// window lets the loop run for d under a fault. It measures; it does not
// synchronise: every assertion after it is an upper bound.
func window(d time.Duration) { <-time.After(d) }

func instanceIDs(s Snapshot, service string) []string {
	svc, ok := s.Service(service)
	if !ok {
		return nil
	}
	ids := []string{}
	for _, in := range svc.Instances {
		ids = append(ids, in.ID)
	}
	return ids
}

func hasInstances(service string, ids ...string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		got := instanceIDs(s, service)
		return got != nil && slices.Equal(got, ids)
	}
}

// logRecorder is a slog handler that keeps messages and writes them to the
// test log.
type logRecorder struct {
	out   interface{ Write([]byte) (int, error) }
	mu    sync.Mutex
	msgs  []string
	lines []string // message and attributes, as written
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String()); return true })
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	fmt.Fprintln(l.out, b.String())
	return nil
}

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// countAttrs counts the records with message msg whose line holds every
// one of attrs (written key="value").
func (l *logRecorder) countAttrs(msg string, attrs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, line := range l.lines {
		if l.msgs[i] != msg {
			continue
		}
		ok := true
		for _, a := range attrs {
			ok = ok && strings.Contains(line, " "+a)
		}
		if ok {
			n++
		}
	}
	return n
}

func respond(code int, body string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, body, code)
		return true
	}
}

// TestConsulFaults drives each fault against a source that has published a
// good snapshot of two instances.
func TestConsulFaults(t *testing.T) {
	defer goleak.VerifyNone(t)

	// With the default bucket (10 at once, then 10/s) a detector makes at
	// most 10 + 10*window + 1 requests; a spinning loop makes thousands.
	const spinWindow = time.Second
	const spinBound = 21
	// With back-off from 250ms, in one second a failing watch makes the
	// first request plus at most 3 retries (125ms+250ms+500ms minimum).
	const errWindow = time.Second
	const errBound = 5

	errorCases := []struct {
		name  string
		fault func(http.ResponseWriter, *http.Request) bool
		want  string // in Status().LastError
	}{
		{"a 500 No cluster leader keeps the snapshot and backs off", respond(500, "No cluster leader"), "No cluster leader"},
		{"a 429 keeps the snapshot and backs off", respond(429, "Your IP is issuing too many concurrent connections"), "429"},
		{"a 403 ACL not found keeps the snapshot and backs off", respond(403, "ACL not found"), "ACL not found"},
		{"truncated JSON keeps the snapshot and backs off", func(w http.ResponseWriter, r *http.Request) bool {
			writeConsul(w, 1000, []byte(`[{"Node":{"Node":"n1","Address":"127.0`))
			return true
		}, "unexpected EOF"},
	}

	t.Run("group", func(t *testing.T) {
		for _, tc := range errorCases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := newFakeConsul(t)
				// A bucket too large to matter: back-off alone must hold.
				h := startSource(t, f, func(o *ConsulOptions) { o.Rate, o.Burst = 1000, 1000 })
				good := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
				before, _ := h.published()

				f.setFault(tc.fault)
				f.change(nil) // wake the blocked queries into the fault
				testenv.WaitFor(t, 5*time.Second, "the error in Status", func() bool {
					return strings.Contains(h.src.Status().LastError, tc.want)
				})
				f.counts()
				window(errWindow)
				for watch, n := range f.counts() {
					if n > errBound {
						t.Errorf("%s: %d requests in %s under %q, want at most %d (back-off)", watch, n, errWindow, tc.want, errBound)
					}
				}
				st := h.src.Status()
				if st.ErrorSince.IsZero() || st.LastSuccess.IsZero() || st.LastSuccess.After(st.ErrorSince) {
					t.Errorf("Status = %+v, want ErrorSince set and LastSuccess at or before it", st)
				}
				if n, last := h.published(); n != before || !snapshotsEqual(last, good) {
					t.Errorf("published %d snapshots during the fault (before: %d), last %+v; want the last good one kept", n, before, last)
				}
				if got := h.logs.count("consul unreachable"); got != 1 {
					t.Errorf("logged the outage %d times, want once", got)
				}

				f.setFault(nil)
				f.change(func() { f.entries["web"] = f.entries["web"][:1] })
				h.waitSnapshot("recovery after the fault clears", hasInstances("web", "n1/web-1"))
				testenv.WaitFor(t, 5*time.Second, "the error to clear", func() bool { return h.src.Status().LastError == "" })
				if got := h.logs.count("consul answering again"); got != 1 {
					t.Errorf("logged the recovery %d times, want once", got)
				}
			})
		}

		t.Run("a hung blocking query is abandoned after the request timeout and the snapshot kept", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			release := make(chan struct{})
			defer close(release)
			// wait 200ms: a query is abandoned after 200ms*17/16 + 1s.
			h := startSource(t, f, func(o *ConsulOptions) { o.WaitTime = 200 * time.Millisecond })
			good := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			before, _ := h.published()

			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return true
			})
			f.counts()
			start := time.Now()
			testenv.WaitFor(t, 10*time.Second, "the hung query to time out", func() bool {
				return strings.Contains(h.src.Status().LastError, "deadline exceeded")
			})
			if d := time.Since(start); d < requestTimeout(200*time.Millisecond)-100*time.Millisecond {
				t.Errorf("gave up on the hung query after %s, before the request timeout", d)
			}
			for watch, n := range f.counts() {
				if n > 3 {
					t.Errorf("%s: %d requests while queries hang, want at most 3", watch, n)
				}
			}
			if n, last := h.published(); n != before || !snapshotsEqual(last, good) {
				t.Errorf("published during the hang: %d (before %d), last %+v", n, before, last)
			}
			f.setFault(nil)
			f.change(func() { f.entries["web"] = f.entries["web"][1:] })
			h.waitSnapshot("recovery after the hang", hasInstances("web", "n1/web-2"))
		})

		t.Run("an index that goes backwards starts over at 0 and follows the new index", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.resetTo(5000, nil)
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			testenv.WaitFor(t, 5*time.Second, "a query blocking at 5000", func() bool { return f.waitParam("catalog") == "5000" })

			// The server's state is reset (snapshot restore, agent restarted
			// empty): blocked queries answer with a lower index.
			f.counts()
			f.resetTo(7, func() { f.entries["web"] = f.entries["web"][:1] })
			h.waitSnapshot("the reset state", hasInstances("web", "n1/web-1"))
			testenv.WaitFor(t, 5*time.Second, "a query blocking at the new index", func() bool { return f.waitParam("catalog") == "7" })
			window(spinWindow)
			for watch, n := range f.counts() {
				// A detector: answer at 7, one fresh query at 0, then one
				// blocking at 7. A service: the sweep's probe and fetch.
				if n > 4 {
					t.Errorf("%s: %d requests after the reset, want at most 4", watch, n)
				}
			}
			f.change(func() { f.entries["web"] = append(f.entries["web"], fakeEntry("web-3", 8003, "passing")) })
			h.waitSnapshot("a change after the reset", hasInstances("web", "n1/web-1", "n1/web-3"))
		})

		t.Run("after an error the next query starts afresh instead of blocking on the old index", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.resetTo(5000, nil)
			h := startSource(t, f, func(o *ConsulOptions) { o.MinBackoff = 10 * time.Millisecond })
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			// The agent dies and comes back empty with a low index: a
			// query at index 5000 would block for the whole wait (1m).
			f.setFault(respond(500, "rpc error: No cluster leader"))
			f.change(nil)
			testenv.WaitFor(t, 5*time.Second, "the error", func() bool { return h.src.Status().LastError != "" })
			f.resetTo(3, func() { f.entries["web"] = []*api.ServiceEntry{fakeEntry("web-9", 8009, "passing")} })
			f.setFault(nil)
			h.waitSnapshot("the new agent's state", hasInstances("web", "n1/web-9"))
		})

		t.Run("a restarted agent is noticed even when Go retries the cut query on a new connection", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.resetTo(5000, nil)
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			testenv.WaitFor(t, 5*time.Second, "queries blocking at 5000", func() bool {
				return f.waitParam("checks") == "5000" && f.waitParam("catalog") == "5000"
			})
			// The transport sees EOF on a reused connection and sends the
			// same GET (index=5000) again on a new one, where the new agent
			// would hold it for the whole wait (1m).
			f.restart(3, func() { f.entries["web"] = []*api.ServiceEntry{fakeEntry("web-9", 8009, "passing")} })
			h.waitSnapshot("the restarted agent's state", hasInstances("web", "n1/web-9"))
			if st := h.src.Status(); st.LastError != "" {
				t.Logf("status after the restart: %+v", st)
			}
		})

		t.Run("a server that closes every connection still gets blocking queries, not polling", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Connection", "close")
				return false
			})
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			testenv.WaitFor(t, 5*time.Second, "the connection check to give up", func() bool {
				return h.logs.count("closes its connection after every answer") == 2 // the two detectors
			})
			testenv.WaitFor(t, 5*time.Second, "queries blocking again", func() bool {
				return f.waitParam("checks") != "" && f.waitParam("catalog") != ""
			})
			f.counts()
			window(spinWindow)
			for watch, n := range f.counts() {
				if n > 1 {
					t.Errorf("%s: %d requests in %s without changes, want at most 1 (blocking)", watch, n, spinWindow)
				}
			}
			f.change(func() { f.entries["web"] = f.entries["web"][:1] })
			h.waitSnapshot("a change", hasInstances("web", "n1/web-1"))
		})

		t.Run("an index of 0 is never used to block", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.change(nil)
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			// The server now reports index 0. A client that blocked on 0
			// would get an answer at once, every time.
			f.change(nil)
			f.mu.Lock()
			f.index = 0
			f.mu.Unlock()
			f.change(func() {})
			// Consul holds a query whose index is above its own, so a
			// query sent at an old index after the drop would wait out
			// its wait time: keep answering at 0 until both detectors
			// block at 1, as a server whose index stays at 0 would.
			lastWake := time.Now()
			f.resetTo(0, nil)
			testenv.WaitFor(t, 5*time.Second, "queries blocking at index 1", func() bool {
				ok := f.waitParam("checks") == "1" && f.waitParam("catalog") == "1"
				if !ok && time.Since(lastWake) > 100*time.Millisecond {
					t.Logf("blocking at: checks %q, catalog %q", f.waitParam("checks"), f.waitParam("catalog"))
					f.resetTo(0, nil)
					lastWake = time.Now()
				}
				return ok
			})
			f.counts()
			window(spinWindow)
			for watch, n := range f.counts() {
				if n > 1 {
					t.Errorf("%s: %d requests in %s at index 0, want at most 1 (blocking at 1)", watch, n, spinWindow)
				}
			}
		})

		t.Run("a server that answers every query at once cannot make the loop spin", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			h := startSource(t, f, nil)
			good := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			before, _ := h.published()
			var n uint64 = 100
			var mu sync.Mutex
			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				// A new index on every answer, the same data: as if
				// something unrelated changed all the time.
				mu.Lock()
				n++
				idx := n
				mu.Unlock()
				var body any = map[string][]string{"consul": nil, "web": {"switchyard.enable=true"}}
				if strings.HasPrefix(r.URL.Path, "/v1/health/") {
					body = []*api.ServiceEntry{fakeEntry("web-1", 8001, "passing"), fakeEntry("web-2", 8002, "passing")}
				}
				b, _ := json.Marshal(body)
				writeConsul(w, idx, b)
				return true
			})
			f.change(nil)
			f.counts()
			window(spinWindow)
			for watch, n := range f.counts() {
				// A service is read by sweeps, each an index-only
				// request and a fetch when the index moved; the catalog
				// detector's answers are free up to two per sweep (one
				// starting it, one queueing the next); sweeps that find
				// nothing take tokens.
				bound := spinBound
				if watch != "checks" {
					bound *= 2
				}
				if n > bound {
					t.Errorf("%s: %d requests in %s, want at most %d (rate limit)", watch, n, spinWindow, bound)
				}
			}
			if n, last := h.published(); n != before || !snapshotsEqual(last, good) {
				t.Errorf("unchanged answers published %d snapshots (before %d)", n, before)
			}
		})
	})
}

func snapshotsEqual(a, b Snapshot) bool { return reflect.DeepEqual(a, b) }

func TestConsulSnapshots(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("group", func(t *testing.T) {
		t.Run("an empty answer is authoritative: the service stays with no instances", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			f.change(func() { f.entries["web"] = nil })
			snap := h.waitSnapshot("the empty service", func(s Snapshot) bool {
				svc, ok := s.Service("web")
				return ok && len(svc.Instances) == 0
			})
			if svc, _ := snap.Service("web"); len(svc.Routes) != 1 || svc.Routes[0].PathPrefix != "/web" {
				t.Errorf("routes of the empty service = %+v, want its tag route kept", svc.Routes)
			}
		})

		t.Run("a burst of real changes is followed without waiting for rate-limit tokens", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			// One token every 2s: a loop that spent tokens on real changes
			// would take 2s per change below.
			h := startSource(t, f, func(o *ConsulOptions) { o.Rate, o.Burst = 0.5, 1 })
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			ids := []string{"n1/web-1", "n1/web-2"}
			for i := 3; i <= 10; i++ {
				id := "web-" + strconv.Itoa(i)
				// Same tags: only the sweep can find the new instance.
				f.change(func() { f.entries["web"] = append(f.entries["web"], fakeEntry(id, 8000+i, "passing")) })
				ids = append(ids, "n1/"+id)
				slices.Sort(ids)
				var snap Snapshot
				testenv.WaitFor(t, time.Second, id+" in the snapshot", func() bool {
					_, snap = h.published()
					return hasInstances("web", ids...)(snap)
				})
			}
		})

		t.Run("an unchanged answer at a new index publishes nothing", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			h := startSource(t, f, nil)
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			before, _ := h.published()
			f.counts()
			f.change(nil)
			testenv.WaitFor(t, 5*time.Second, "both watches to query again", func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.hits["web"] >= 1 && f.hits["catalog"] >= 1
			})
			if n, _ := h.published(); n != before {
				t.Errorf("published %d snapshots after an unchanged answer, want %d", n, before)
			}
		})

		t.Run("registry health, tags and a new instance reach the snapshot", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			h := startSource(t, f, func(o *ConsulOptions) {
				o.Services = map[string]*config.HealthOverride{"web": {Path: ptr("/file")}}
			})
			h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			f.change(func() {
				f.catalog["web"] = []string{"switchyard.enable=true", "switchyard.path=/api", "switchyard.health.path=/tags", "switchyard.health.interval=2s"}
				f.entries["web"] = []*api.ServiceEntry{fakeEntry("web-1", 8001, "critical"), fakeEntry("web-3", 8003, "passing")}
			})
			snap := h.waitSnapshot("the new state", hasInstances("web", "n1/web-1", "n1/web-3"))
			svc, _ := snap.Service("web")
			if got := svc.Instances[0].Registry; got.Status != StatusCritical || got.Check != "web check" {
				t.Errorf("registry of web-1 = %+v, want critical from its check", got)
			}
			if svc.Instances[1].Address != "127.0.0.1:8003" {
				t.Errorf("address of web-3 = %q", svc.Instances[1].Address)
			}
			if len(svc.Routes) != 1 || svc.Routes[0].PathPrefix != "/api" {
				t.Errorf("routes = %+v, want /api from tags", svc.Routes)
			}
			h2 := svc.Health.Apply(config.Health{})
			if h2.Path != "/file" || h2.Interval != 2*time.Second {
				t.Errorf("health = %+v, want path from the config file and interval from tags", h2)
			}
		})

		t.Run("a service leaving the catalog leaves the snapshot, a config-named one stays", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.change(func() {
				f.catalog["legacy"] = []string{"v1"}
				f.entries["legacy"] = []*api.ServiceEntry{fakeEntry("legacy-1", 9001, "passing")}
			})
			h := startSource(t, f, func(o *ConsulOptions) {
				o.Services = map[string]*config.HealthOverride{"legacy": nil, "absent": nil}
			})
			snap := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			if legacy, ok := snap.Service("legacy"); !ok || len(legacy.Routes) != 0 || len(legacy.Instances) != 1 {
				t.Errorf("legacy = %+v, want its instance and no tag route (it did not opt in)", legacy)
			}
			if absent, ok := snap.Service("absent"); !ok || len(absent.Instances) != 0 {
				t.Errorf("absent = %+v, %v; want a config-named service with no instances", absent, ok)
			}
			f.change(func() {
				delete(f.catalog, "web")
				delete(f.catalog, "legacy")
				delete(f.entries, "web")
				delete(f.entries, "legacy")
			})
			// Each service's part reaches the snapshot when it is read,
			// not necessarily together.
			h.waitSnapshot("web to leave and legacy to stay, empty", func(s Snapshot) bool {
				_, web := s.Service("web")
				legacy, ok := s.Service("legacy")
				return !web && ok && len(legacy.Instances) == 0
			})
			for _, s := range h.all() {
				if _, ok := s.Service("legacy"); !ok {
					t.Errorf("a snapshot without legacy: %+v; want it kept throughout (config names it)", s)
				}
			}
		})

		t.Run("a service whose first query fails is absent, not empty, and does not hold back the others", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.change(func() {
				f.catalog["secret"] = []string{"switchyard.enable=true"}
				f.entries["secret"] = []*api.ServiceEntry{fakeEntry("s-1", 9001, "passing")}
			})
			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v1/health/service/secret" {
					http.Error(w, "Permission denied", http.StatusForbidden)
					return true
				}
				return false
			})
			h := startSource(t, f, nil)
			snap := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			if _, ok := snap.Service("secret"); ok {
				t.Error("a service that never answered is in the snapshot")
			}
			if st := h.src.Status(); !strings.Contains(st.LastError, `watching service "secret"`) {
				t.Errorf("LastError = %q, want it to name the failing watch", st.LastError)
			}
			f.setFault(nil)
			h.waitSnapshot("secret after the fault clears", hasInstances("secret", "n1/s-1"))
		})

		t.Run("a service that failed first and then answers empty appears with no instances", func(t *testing.T) {
			t.Parallel()
			f := newFakeConsul(t)
			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v1/health/service/planned" {
					http.Error(w, "No cluster leader", http.StatusInternalServerError)
					return true
				}
				return false
			})
			h := startSource(t, f, func(o *ConsulOptions) {
				o.Services = map[string]*config.HealthOverride{"planned": nil}
				o.MinBackoff = 10 * time.Millisecond
			})
			snap := h.waitSnapshot("the first snapshot", hasInstances("web", "n1/web-1", "n1/web-2"))
			if _, ok := snap.Service("planned"); ok {
				t.Error("a service that never answered is in the snapshot")
			}
			f.setFault(nil)
			h.waitSnapshot("planned, empty", func(s Snapshot) bool {
				svc, ok := s.Service("planned")
				return ok && len(svc.Instances) == 0
			})
		})
	})
}

func TestConsulOverAUnixSocket(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // last: after the servers close
	sock := filepath.Join(t.TempDir(), "consul.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("no unix sockets here: %v", err)
	}
	f := newFakeConsul(t)
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	conf := api.DefaultConfig()
	conf.Address, conf.Token = "unix://"+sock, ""
	src, err := NewConsul(ConsulOptions{Config: conf, Logger: slog.New(&logRecorder{out: t.Output()})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Snapshot, 1)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(s Snapshot) {
			select {
			case got <- s:
			default:
			}
		})
	}()
	select {
	case s := <-got:
		if !hasInstances("web", "n1/web-1", "n1/web-2")(s) {
			t.Errorf("snapshot over the socket = %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot over the unix socket within 5s")
	}
	cancel()
	<-done
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	lo, hi := 250*time.Millisecond, 2*time.Second
	for n := 1; n < 100; n++ {
		want := min(hi, lo<<min(n-1, 20))
		for range 20 {
			d := backoff(lo, hi, n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

func TestTokenBucketLimitsTheRate(t *testing.T) {
	b := newTokenBucket(20, 3)
	start := time.Now()
	for range 3 + 10 {
		if !b.take(context.Background()) {
			t.Fatal("take failed without cancellation")
		}
	}
	// 3 at once, then 10 at 20/s: at least 500ms.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("13 tokens took %s, want at least 450ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.take(ctx) {
		t.Error("take succeeded on a cancelled context with an empty bucket")
	}
}
