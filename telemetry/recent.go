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
type recentTraces struct {
	uiURL string

	mu      sync.Mutex
	pending map[trace.SpanID]recentAttempts
	ring    []recentRec
	next    int // where the next request goes
}

const (
	recentSize        = 300
	maxPending        = 4096
	maxRecentAttempts = 4 // attempts kept per request; later ones are left out
)

// recentAttempts holds a request's attempts inline, so that filing one
// costs no allocation on the request path.
type recentAttempts struct {
	n int
	a [maxRecentAttempts]RecentAttempt
}

// recentRec is one ring entry: what becomes a RecentRequest when the API
// asks (the trace id's text, the link and the attempts' slice are made
// then, not on the request path).
type recentRec struct {
	tid trace.TraceID
	req RecentRequest
	att recentAttempts
}

var _ sdktrace.SpanProcessor = (*recentTraces)(nil)

func newRecentTraces(uiURL string) *recentTraces {
	// The ring grows as requests are recorded: with few or none sampled it
	// stays small, and tracing adds no live heap for the collector to
	// mark on every cycle (a full ring is about 140 KiB).
	return &recentTraces{uiURL: strings.TrimRight(uiURL, "/"), pending: map[trace.SpanID]recentAttempts{}}
}

func (*recentTraces) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (*recentTraces) Shutdown(context.Context) error                  { return nil }
func (*recentTraces) ForceFlush(context.Context) error                { return nil }

// OnEnd files an SDK span (see record).
func (p *recentTraces) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.record(&spanRec{sc: s.SpanContext(), parent: s.Parent(), kind: s.SpanKind(), name: s.Name(),
		start: s.StartTime(), end: s.EndTime(), attrs: s.Attributes()})
}

// record files a client span under its server span, and a server span,
// with the attempts filed under it, into the ring.
func (p *recentTraces) record(s *spanRec) {
	switch s.kind {
	case trace.SpanKindClient:
		a := RecentAttempt{DurationMS: ms(s.end.Sub(s.start))}
		for _, kv := range s.attrs {
			switch kv.Key {
			case AttrAttempt:
				a.N = int(kv.Value.AsInt64())
			case AttrInstanceID:
				a.Instance = kv.Value.AsString()
			case "http.response.status_code":
				a.Status = int(kv.Value.AsInt64())
			case "error.type":
				a.Error = kv.Value.AsString()
			case AttrHealthy:
				a.Healthy = int(kv.Value.AsInt64())
			case AttrPanic:
				a.Panic = kv.Value.AsBool()
			}
		}
		parent := s.parent.SpanID()
		p.mu.Lock()
		if at, ok := p.pending[parent]; ok || len(p.pending) < maxPending {
			if at.n < maxRecentAttempts {
				at.a[at.n] = a
				at.n++
			}
			p.pending[parent] = at
		}
		p.mu.Unlock()
	case trace.SpanKindServer:
		rec := recentRec{tid: s.sc.TraceID()}
		r := &rec.req
		r.Name, r.Start, r.DurationMS = s.name, s.start, ms(s.end.Sub(s.start))
		for _, kv := range s.attrs {
			switch kv.Key {
			case "http.route":
				r.Route = kv.Value.AsString()
			case AttrService:
				r.Service = kv.Value.AsString()
			case "http.response.status_code":
				r.Status = int(kv.Value.AsInt64())
			case AttrKeptAfter:
				r.KeptAfter = kv.Value.AsStringSlice()
			}
		}
		sid := s.sc.SpanID()
		p.mu.Lock()
		rec.att = p.pending[sid]
		delete(p.pending, sid)
		if len(p.ring) < recentSize {
			if len(p.ring) == cap(p.ring) {
				p.ring = slices.Grow(p.ring, min(max(len(p.ring), 8), recentSize-len(p.ring)))
			}
			p.ring = append(p.ring, rec)
		} else {
			p.ring[p.next] = rec
		}
		p.next = (p.next + 1) % recentSize
		p.mu.Unlock()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// snapshot returns the kept requests, newest first, attempts in order.
func (p *recentTraces) snapshot() []RecentRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.ring) // next == n until the ring is full
	out := make([]RecentRequest, 0, n)
	for i := range n {
		rec := &p.ring[(p.next-1-i+n)%n]
		r := rec.req
		r.TraceID = rec.tid.String()
		if p.uiURL != "" {
			r.URL = p.uiURL + "/trace/" + r.TraceID
		}
		r.Attempts = slices.Clone(rec.att.a[:rec.att.n])
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
