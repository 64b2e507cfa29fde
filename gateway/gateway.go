// Package gateway routes each request to a service and proxies it to one
// of that service's healthy instances, by weighted round-robin or least
// request (docs/balancing.md).
//
// The request path takes no lock: the routing table and every service's
// healthy pool are immutable snapshots read through atomic pointers.
package gateway

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/h1"
	"github.com/switchyard-gw/switchyard/health"
)

// Hooks let telemetry observe requests and attempts. Nil hooks cost nothing.
//
// What a hook may keep: the outgoing request that Attempt and Ejected are
// given, its URL, its Header and the value slices in it belong to the
// gateway, which reuses them for a later request once this one has ended
// (after End returns, or after the handler returns when Request gave no
// RequestEnd). A hook may read and change them until then and keep what
// it copied out (strings are immutable and may be kept as they are), but
// no reference to the request, its URL, its header map or its slices.
type Hooks struct {
	// Request is called once per request after routing; route is "" when no
	// route matched. It returns the context for the rest of the request and
	// what is told the final status when the request ends (nil: nothing).
	Request func(r *http.Request, route, service string) (context.Context, RequestEnd)
	// Attempt is called before each upstream attempt with the outgoing
	// request (its headers may be modified, e.g. to inject trace context;
	// see Attempt.Direct for a cheaper way). It returns what is told the
	// attempt's outcome (nil: nothing). Every sending that reached the
	// wire is an attempt: retries on another instance and re-sends after
	// a kept-alive connection turned out closed alike.
	Attempt func(req *http.Request, a Attempt) AttemptEnd
	// Fields names the request fields, in canonical form, that the
	// Attempt hook sets itself on every attempt: the fast core leaves the
	// client's fields of these names out of the outgoing request, so that
	// the hook need not delete them. Elsewhere the hook replaces them.
	Fields []string
	// Ejected, if set, is called when an attempt of req made passive
	// health eject the instance, after that attempt's outcome func.
	Ejected func(req *http.Request)
	// Release, if set, is called with a request's RequestEnd once after
	// its End when nothing holds any longer the context Request returned
	// (nor a context derived from it), the outgoing request, its header
	// map or any value a hook set in it: the hook may then reuse the state
	// behind them for a later request. It is called for a request the fast
	// core served over the gateway's own transport (see releasable in
	// gateway/fastproxy.go); a request served otherwise is not released,
	// and its state is left to the collector.
	Release func(end RequestEnd)
}

// RequestEnd is told how a request ended: its final status, 0 when the
// client went away before a status was written. End is called once, from
// the request's goroutine. An interface rather than a func, so that the
// hook's per-request state can be it without a closure of its own.
type RequestEnd interface{ End(status int) }

// AttemptEnd is told an attempt's outcome: the status, or the error.
// EndAttempt is called once per attempt, before the next attempt starts, from
// the request's goroutine.
type AttemptEnd interface{ EndAttempt(status int, err error) }

// AttemptEndFunc is a func used as an AttemptEnd.
type AttemptEndFunc func(status int, err error)

// EndAttempt calls f.
func (f AttemptEndFunc) EndAttempt(status int, err error) { f(status, err) }

// Attempt describes one upstream attempt.
type Attempt struct {
	Upstream *Upstream
	N        int  // attempts before this one for the same request; 0 for the first
	Healthy  int  // size of the healthy set at pick time
	Panic    bool // the set holds every instance (health.panic_threshold)
	// Direct is set when the attempt is the fast core's over the gateway's
	// own HTTP/1.1 transport: the outgoing request's context is the one
	// the Request hook returned, as it is, and the transport writes that
	// context's fields (h1.HeadFields) into the request head. The hook may
	// then hand its fields that way instead of through the header map;
	// the header holds none of the client's fields named in Hooks.Fields.
	Direct bool
	// Policy is the service's balancing policy (config.PolicyRoundRobin or
	// config.PolicyLeastRequest) and Weight the instance's effective
	// weight in configured units (less while it ramps up).
	Policy string
	Weight float64
}

// Ejector receives passive-health verdicts: an instance that failed
// health.passive.consecutive_failures requests in a row. It reports whether
// the instance was ejected. Implemented by *health.Checker.
type Ejector interface {
	Eject(service, id, reason string) bool
}

// Options configure a Gateway.
type Options struct {
	Proxy  config.Proxy
	Logger *slog.Logger // nil: slog.Default()
	Hooks  Hooks
	// RetryAfter is sent with 503 when a service has no healthy instance.
	RetryAfter time.Duration
	// Transport overrides the upstream transport (tests); nil builds one
	// from Proxy.
	Transport http.RoundTripper
	// EjectAfter enables passive health: after EjectAfter consecutive
	// failed attempts (connection errors, 502, 503, 504) an instance is
	// reported to the Ejector given to SetEjector. Zero: off.
	EjectAfter int
	// BodyTimeout bounds reading a request body; the deadline is lifted
	// once the body is read, so streams are unaffected. Zero: unbounded.
	BodyTimeout time.Duration
}

// Gateway is the proxy handler. It implements health.Setter. Safe for
// concurrent use.
type Gateway struct {
	log        *slog.Logger
	hooks      Hooks
	retries    int
	trusted    config.CIDRs
	retryAfter string
	proxy      *httputil.ReverseProxy
	retry      *retryTransport // proxy's Transport, for the fast core too
	bufs       *bufferPool     // proxy's BufferPool, for the fast core too
	noFast     bool            // tests: every request through ReverseProxy
	ejector    Ejector
	ejectAfter int32
	wire       *h1.Transport // nil when Options.Transport was given
	ownFields  []string      // Hooks.Fields, canonical
	ownLens    uint64        // bit n set: a name in ownFields is n bytes long (n < 64)
	maxBody    int64
	bodyTime   time.Duration
	proxyCfg   config.Proxy // for per-service transports (protocol.go)

	table atomic.Pointer[table]
	// offset gives a new pool its round-robin start; random so that many
	// gateways do not hit instances in lock-step. Tests fix it.
	offset func() uint64
	now    func() time.Time // slow-start clock; tests step it

	mu          sync.Mutex // guards services (writers only)
	services    map[string]*service
	sawServices bool // SetServices was called
	closed      bool // no more slow-start steps
}

var _ health.Setter = (*Gateway)(nil)

// New builds a Gateway with an empty routing table.
func New(opt Options) (*Gateway, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ra := int(opt.RetryAfter.Round(time.Second) / time.Second)
	if ra < 1 {
		ra = 1
	}
	g := &Gateway{
		log:        opt.Logger,
		hooks:      opt.Hooks,
		retries:    opt.Proxy.Retries,
		trusted:    opt.Proxy.TrustedProxies,
		retryAfter: strconv.Itoa(ra),
		services:   map[string]*service{},
		offset:     randomOffset,
		now:        time.Now,
		ejectAfter: int32(opt.EjectAfter),
		maxBody:    opt.Proxy.MaxBodyBytes,
		bodyTime:   opt.BodyTimeout,
		proxyCfg:   opt.Proxy,
	}

	for _, f := range opt.Hooks.Fields {
		if f != "" {
			g.ownFields = append(g.ownFields, http.CanonicalHeaderKey(f))
			g.ownLens |= 1 << min(len(f), 63)
		}
	}
	base := opt.Transport
	if base == nil {
		g.wire = newUpstream(opt.Proxy)
		base = g.wire
	}
	g.retry = &retryTransport{g: g, base: base}
	g.bufs = newBufferPool()
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      g.retry,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.errorHandler,
		// Copy errors after the response started are expected when clients
		// or upstreams go away; they are not worth more than debug.
		ErrorLog: log.New(slogWriter{opt.Logger}, "", 0),
		// Without a pool every response body copy allocates 32 KiB.
		BufferPool: g.bufs,
	}
	g.table.Store(&table{})
	return g, nil
}

// SetEjector sets the receiver of passive-health ejections. Call it before
// the gateway serves; without one, passive health is off.
func (g *Gateway) SetEjector(e Ejector) { g.ejector = e }

// serviceLocked returns the stable entry for name, creating it.
func (g *Gateway) serviceLocked(name string) *service {
	s := g.services[name]
	if s == nil {
		s = &service{name: name}
		g.services[name] = s
	}
	return s
}

// SetHealthy publishes the routable instances of a service.
func (g *Gateway) SetHealthy(name string, instances []discovery.Instance, panic bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	svc := g.serviceLocked(name)
	prev := g.publishLocked(svc, instances, panic)
	if g.wire != nil {
		next := svc.pool.Load()
		for _, u := range prev {
			if !contains(next.upstreams, u) {
				g.wire.CloseIdle(u.Address) // out of rotation: free its connections
			}
		}
	}
}

// CloseIdleConnections closes the pooled upstream connections and stops
// slow-start steps. Call it after the server stopped serving.
func (g *Gateway) CloseIdleConnections() {
	g.stopRamps()
	if g.wire != nil {
		g.wire.Close()
	}
	g.mu.Lock()
	g.closeProtoTransportsLocked()
	g.mu.Unlock()
}

// SetRoutes replaces the routing table. Routes naming a service that has no
// healthy instance yet answer 503 until it has.
func (g *Gateway) SetRoutes(routes []config.Route) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.table.Store(newTable(routes, g.serviceLocked))
}

// Routes returns the routing table in match order.
func (g *Gateway) Routes() []RouteInfo { return g.table.Load().info() }

// Healthy returns the number of routable instances of service.
func (g *Gateway) Healthy(service string) int {
	g.mu.Lock()
	s := g.services[service]
	g.mu.Unlock()
	if s == nil {
		return 0
	}
	if p := s.pool.Load(); p != nil {
		return len(p.upstreams)
	}
	return 0
}

// HasHealthyRoute reports whether at least one route has a healthy instance.
func (g *Gateway) HasHealthyRoute() bool {
	for _, r := range g.table.Load().routes {
		if p := r.svc.pool.Load(); p != nil && len(p.upstreams) > 0 {
			return true
		}
	}
	return false
}

// reqState travels with one request through the proxy. Owned by the request.
type reqState struct {
	route  *route
	pool   *pool
	path   string // cleaned path, before prefix stripping
	tried  []*Upstream
	triedA [4]*Upstream
	status int
	body   *retryBody
	// replay records the body of a request to an HTTP/2 service so that
	// it can be sent again (withReplay); nil otherwise.
	replay *replay
	// bodyErr is the error reading the client's body, if any: the client's
	// fault, so neither a 5xx nor a passive-health failure.
	bodyErr error
	// proto is the service's transport when it is not HTTP/1.1; nil for
	// HTTP/1.1. Loaded once, so every attempt of a request uses the same.
	proto *protoTransport
	grpc  bool // the request is a gRPC call: errors are answered in gRPC
	fast  bool // the fast core serves the request (serveFast)
	// active is the upstream whose response is being sent, counted in
	// flight until the request ends.
	active *Upstream
}

// release ends the in-flight count of the upstream that answered. Deferred,
// so a response copy aborted by a panic (http.ErrAbortHandler) counts too.
func (st *reqState) release() {
	if st.active != nil {
		st.active.inflight.Add(-1)
		st.active = nil
	}
}

type stateKey struct{}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h1.OriginForm(r) {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, "request target must be a path (origin-form) or an http URL")
		return
	}
	clean := cleanPath(r.URL.Path)
	rt := g.table.Load().match(r.Host, clean)
	var end RequestEnd
	ctx := r.Context()
	if g.hooks.Request != nil {
		var routeName, svcName string
		if rt != nil {
			routeName, svcName = rt.name, rt.svc.name
		}
		ctx, end = g.hooks.Request(r, routeName, svcName)
	}
	grpc := isGRPC(r)
	if rt == nil {
		msg := "no route for this host and path"
		if grpc {
			msg = fmt.Sprintf("no route for gRPC service %q", grpcServiceOf(clean))
		}
		g.finish(end, answerError(w, grpc, http.StatusNotFound, msg))
		return
	}
	p := rt.svc.pool.Load()
	if p == nil || len(p.upstreams) == 0 {
		w.Header().Set("Retry-After", g.retryAfter)
		g.finish(end, answerError(w, grpc, http.StatusServiceUnavailable, fmt.Sprintf("no healthy instance of service %q", rt.svc.name)))
		return
	}
	proto := rt.svc.proto.Load()
	if g.fastEligible(r, proto, grpc) {
		g.serveFast(w, r, ctx, end, rt, p, clean) // gateway/fastproxy.go
		return
	}
	st := &reqState{route: rt, pool: p, path: clean, proto: proto, grpc: grpc}
	st.tried = st.triedA[:0]
	defer st.release()
	bodyTime := g.bodyTime
	if grpc {
		// A gRPC call's body is its stream of requests: it is bounded by
		// the call's deadline, not by server.read_timeout.
		bodyTime = 0
		if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		if g.maxBody > 0 && r.ContentLength > g.maxBody {
			g.finish(end, answerError(w, grpc, http.StatusRequestEntityTooLarge, "request body too large"))
			return
		}
		r.Body = newClientBody(w, r.Body, st, g.maxBody, bodyTime)
	}
	if isUpgrade(r) {
		// An upgraded connection (WebSocket) lives as long as both ends
		// want; no server deadline may cut it.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		w = upgradeWriter{w}
	}
	// One copy of the request carries the hook's context and the state.
	r = r.WithContext(context.WithValue(ctx, stateKey{}, st))
	g.proxy.ServeHTTP(w, r)
	g.finish(end, st.status)
}

func (g *Gateway) finish(end RequestEnd, status int) {
	if end != nil {
		end.End(status)
	}
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	if st, ok := resp.Request.Context().Value(stateKey{}).(*reqState); ok {
		st.status = resp.StatusCode
		wrapGRPCBody(resp, st)
	}
	return nil
}

// bufferPool recycles the buffers ReverseProxy copies bodies with: a free
// list that never allocates on Put (a sync.Pool of slices would). Buffers
// are 8 KiB, as nginx's proxy buffers: larger ones cost memory per
// concurrent request and buy little, since reads return what the socket
// has. At most 128 idle buffers (1 MiB) are kept.
type bufferPool struct{ free chan []byte }

func newBufferPool() *bufferPool { return &bufferPool{free: make(chan []byte, 128)} }

func (p *bufferPool) Get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, 8<<10)
	}
}

func (p *bufferPool) Put(b []byte) {
	select {
	case p.free <- b:
	default: // full: let the GC have it
	}
}

// slogWriter adapts ReverseProxy's *log.Logger to slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (s slogWriter) Write(p []byte) (int, error) {
	s.l.Debug("proxy", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
