package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// RecentRequest is one recorded request (head-sampled or kept after the
// fact) as the admin API shows it.
type RecentRequest struct {
	TraceID    string          `json:"trace_id"`
	Name       string          `json:"name"`
	Route      string          `json:"route"`
	Service    string          `json:"service"`
	Status     int             `json:"status"`
	Start      time.Time       `json:"start"`
	DurationMS float64         `json:"duration_ms"`
	KeptAfter  []string        `json:"kept_after,omitempty"` // why it was kept after the fact; empty: head-sampled
	Attempts   []RecentAttempt `json:"attempts"`
	URL        string          `json:"url,omitempty"` // the trace in Jaeger's UI, when telemetry.ui_url is set
}

// RecentAttempt is one upstream attempt of a RecentRequest, with the
// instance's standing when it was picked.
type RecentAttempt struct {
	N          int     `json:"n"`
	Instance   string  `json:"instance"`
	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"` // error.type: dial_error, timeout, 502, ...
	DurationMS float64 `json:"duration_ms"`
	Healthy    int     `json:"healthy_instances"` // size of the healthy set at pick time
	Panic      bool    `json:"panic,omitempty"`   // picked from every instance (panic threshold)
}

// recentTraces is a span processor (and, for the record path, a sink of
// spanRecs) that keeps the last size recorded
// requests in a ring. Client spans wait, by their parent's span id, for
// their server span (which ends last); at most maxPending of them. It is
// installed only when tracing is on: with tracing off it costs nothing.
// Safe for concurrent use.
//
// Neither the ring nor the pending attempts hold pointers: strings (span
// name, route, service, instance, error type, kept-after reasons) are
// indexes into a small table of the distinct ones, and the start time's
// location an index into a table of locations. The collector does not
// scan the ring's memory, only the tables, which hold a few strings each.
type recentTraces struct {
	uiURL string

	mu      sync.Mutex
	pending map[trace.SpanID]recentAttempts
	ring    []recentRec
	next    int // where the next request goes

	strs    []string          // interned strings by index; strs[0] is ""
	strIdx  map[string]uint32 // index of each string in strs
	compact int               // len(strs) at which unreferenced strings are dropped
	locs    []*time.Location  // start times' locations by index; locs[0] is UTC
}

const (
	recentSize        = 300
	maxPending        = 4096
	maxRecentAttempts = 4 // attempts kept per request; later ones are left out
	minCompact        = 4096
	keptSep           = "\x00" // between kept-after reasons in their interned string
)

// recentAttempts holds a request's attempts inline, so that filing one
// costs no allocation on the request path.
type recentAttempts struct {
	n uint8
	a [maxRecentAttempts]recentAttempt
}

// recentAttempt is a RecentAttempt with its strings interned, in 24 B:
// the attempt number, status and healthy count are clamped to their
// fields (255, 65535), which real ones are far below.
type recentAttempt struct {
	dur           int64 // µs
	instance, err uint32
	status        uint16
	healthy       uint16
	n             uint8
	panic         bool
}

// recentRec is one ring entry: what becomes a RecentRequest when the API
// asks (the strings, the trace id's text, the link and the attempts' slice
// are made then, not on the request path).
type recentRec struct {
	tid    trace.TraceID
	sec    int64 // start, Unix seconds
	dur    int64 // µs
	nsec   int32
	name   uint32
	route  uint32
	svc    uint32
	kept   uint32 // the reasons joined by keptSep
	status uint16
	loc    uint8 // start's location in locs
	keptN  uint8 // number of kept-after reasons
	att    recentAttempts
}

var _ sdktrace.SpanProcessor = (*recentTraces)(nil)

func newRecentTraces(uiURL string) *recentTraces {
	// The ring grows as requests are recorded: with few or none sampled it
	// stays small (a full ring is 300 entries of 160 B, not scanned).
	return &recentTraces{uiURL: strings.TrimRight(uiURL, "/"), pending: map[trace.SpanID]recentAttempts{},
		strs: []string{""}, strIdx: map[string]uint32{"": 0}, compact: minCompact, locs: []*time.Location{time.UTC}}
}

func (*recentTraces) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (*recentTraces) Shutdown(context.Context) error                  { return nil }
func (*recentTraces) ForceFlush(context.Context) error                { return nil }

// OnEnd files an SDK span (see record).
func (p *recentTraces) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	var r spanRec
	r.fill(s)
	p.record(&r)
}

// intern returns s's index in the string table, adding it; p.mu held.
func (p *recentTraces) intern(s string) uint32 {
	if i, ok := p.strIdx[s]; ok {
		return i
	}
	i := uint32(len(p.strs))
	p.strs = append(p.strs, s)
	p.strIdx[s] = i
	return i
}

// location returns l's index in the location table, adding it; p.mu held.
// Past 256 distinct locations (never seen in practice) it files UTC, at 0.
func (p *recentTraces) location(l *time.Location) uint8 {
	for i, x := range p.locs {
		if x == l {
			return uint8(i)
		}
	}
	if len(p.locs) == 256 {
		return 0
	}
	p.locs = append(p.locs, l)
	return uint8(len(p.locs) - 1)
}

// compactStrings drops the strings no ring entry or pending attempt
// refers to (instances come and go); p.mu held.
func (p *recentTraces) compactStrings() {
	strs, idx := []string{""}, map[string]uint32{"": 0}
	re := func(i *uint32) {
		s := p.strs[*i]
		j, ok := idx[s]
		if !ok {
			j = uint32(len(strs))
			strs = append(strs, s)
			idx[s] = j
		}
		*i = j
	}
	reAtt := func(at *recentAttempts) {
		for k := range at.n {
			re(&at.a[k].instance)
			re(&at.a[k].err)
		}
	}
	for i := range p.ring {
		r := &p.ring[i]
		re(&r.name)
		re(&r.route)
		re(&r.svc)
		re(&r.kept)
		reAtt(&r.att)
	}
	for sid, at := range p.pending {
		reAtt(&at)
		p.pending[sid] = at
	}
	p.strs, p.strIdx = strs, idx
	p.compact = max(minCompact, 2*len(strs))
}

// record files a client span under its server span, and a server span,
// with the attempts filed under it, into the ring.
func (p *recentTraces) record(s *spanRec) {
	switch s.kind {
	case trace.SpanKindClient:
		var n, status, healthy int64
		var instance, errType string
		var panicked bool
		for _, kv := range s.attrs {
			switch kv.Key {
			case AttrAttempt:
				n = kv.Value.AsInt64()
			case AttrInstanceID:
				instance = kv.Value.AsString()
			case "http.response.status_code":
				status = kv.Value.AsInt64()
			case "error.type":
				errType = kv.Value.AsString()
			case AttrHealthy:
				healthy = kv.Value.AsInt64()
			case AttrPanic:
				panicked = kv.Value.AsBool()
			}
		}
		parent := s.parent.SpanID()
		p.mu.Lock()
		if at, ok := p.pending[parent]; ok || len(p.pending) < maxPending {
			if at.n < maxRecentAttempts {
				at.a[at.n] = recentAttempt{n: clamp[uint8](n), status: clamp[uint16](status), healthy: clamp[uint16](healthy),
					instance: p.intern(instance), err: p.intern(errType), panic: panicked, dur: s.end.Sub(s.start).Microseconds()}
				at.n++
			}
			p.pending[parent] = at
		}
		p.mu.Unlock()
	case trace.SpanKindServer:
		var route, svc string
		var status int64
		var kept []string
		for _, kv := range s.attrs {
			switch kv.Key {
			case "http.route":
				route = kv.Value.AsString()
			case AttrService:
				svc = kv.Value.AsString()
			case "http.response.status_code":
				status = kv.Value.AsInt64()
			case AttrKeptAfter:
				kept = kv.Value.AsStringSlice()
			}
		}
		rec := recentRec{tid: s.sc.TraceID(), sec: s.start.Unix(), nsec: int32(s.start.Nanosecond()),
			keptN: clamp[uint8](int64(len(kept))), status: clamp[uint16](status), dur: s.end.Sub(s.start).Microseconds()}
		sid := s.sc.SpanID()
		p.mu.Lock()
		if len(p.strs) >= p.compact {
			p.compactStrings()
		}
		rec.loc = p.location(s.start.Location())
		rec.name, rec.route, rec.svc = p.intern(s.name), p.intern(route), p.intern(svc)
		if len(kept) > 0 {
			rec.kept = p.intern(strings.Join(kept[:rec.keptN], keptSep))
		}
		rec.att = p.pending[sid]
		delete(p.pending, sid)
		if len(p.ring) < recentSize {
			if len(p.ring) == cap(p.ring) { // doubling, to exactly recentSize at most
				grown := make([]recentRec, len(p.ring), min(max(2*len(p.ring), 8), recentSize))
				copy(grown, p.ring)
				p.ring = grown
			}
			p.ring = append(p.ring, rec)
		} else {
			p.ring[p.next] = rec
		}
		p.next = (p.next + 1) % recentSize
		p.mu.Unlock()
	}
}

// ms returns microseconds as milliseconds.
func ms(us int64) float64 { return float64(us) / 1000 }

// clamp returns v within [0, the largest T].
func clamp[T uint8 | uint16](v int64) T {
	return T(min(max(v, 0), int64(^T(0))))
}

// snapshot returns the kept requests, newest first, attempts in order.
func (p *recentTraces) snapshot() []RecentRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.ring) // next == n until the ring is full
	out := make([]RecentRequest, 0, n)
	for i := range n {
		rec := &p.ring[(p.next-1-i+n)%n]
		r := RecentRequest{TraceID: rec.tid.String(), Name: p.strs[rec.name], Route: p.strs[rec.route],
			Service: p.strs[rec.svc], Status: int(rec.status), Start: time.Unix(rec.sec, int64(rec.nsec)).In(p.locs[rec.loc]),
			DurationMS: ms(rec.dur), Attempts: make([]RecentAttempt, rec.att.n)}
		if rec.keptN > 0 {
			r.KeptAfter = strings.Split(p.strs[rec.kept], keptSep)
		}
		if p.uiURL != "" {
			r.URL = p.uiURL + "/trace/" + r.TraceID
		}
		for k, a := range rec.att.a[:rec.att.n] {
			r.Attempts[k] = RecentAttempt{N: int(a.n), Instance: p.strs[a.instance], Status: int(a.status), Error: p.strs[a.err],
				DurationMS: ms(a.dur), Healthy: int(a.healthy), Panic: a.panic}
		}
		slices.SortFunc(r.Attempts, func(a, b RecentAttempt) int { return a.N - b.N })
		out = append(out, r)
	}
	return out
}

// RecentTracesHandler serves the last few hundred recorded requests as
// JSON ({"ui_url": ..., "traces": [...]}, newest first); nil when tracing
// is off.
func (t *Telemetry) RecentTracesHandler() http.Handler {
	if t.recent == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(struct {
			UIURL  string          `json:"ui_url,omitempty"`
			Traces []RecentRequest `json:"traces"`
		}{t.recent.uiURL, t.recent.snapshot()})
	})
}
