package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// maxEchoBody bounds how much request body /echo buffers, so a demo
	// backend cannot be made to hold arbitrary amounts of memory.
	maxEchoBody = 1 << 20

	defaultSSECount    = 5
	defaultSSEInterval = 100 * time.Millisecond
	// maxSSECount bounds ?n= so a typo cannot start an endless stream.
	maxSSECount = 10_000

	defaultSlow = time.Second
)

// handler serves the demo backend's endpoints. It is safe for concurrent
// use; the health status is its only mutable state.
type handler struct {
	name   string
	delay  time.Duration
	health atomic.Int32
	mux    *http.ServeMux
}

// newHandler returns the backend's HTTP handler.
//
// name is the body of / and is sent as X-Backend on every response, so
// callers can tell which backend answered. delay is waited before / and
// /echo answer (0 disables it); the wait ends early with 503 if the request
// is cancelled. status is the initial /health code; the caller must ensure
// it is a valid status (see parseStatus).
//
// Routes:
//
//	GET  /health                 current health status, body "ok" or "unhealthy"
//	POST /admin/health?status=N  set the health status (100-599)
//	     /echo                   JSON description of the request
//	GET  /sse?n=5&interval=100ms server-sent events "data: 1" .. "data: n"
//	GET  /slow?d=1s              answer after d
//	     /  (anything else)      the name
func newHandler(name string, delay time.Duration, status int) http.Handler {
	h := &handler{name: name, delay: delay, mux: http.NewServeMux()}
	h.health.Store(int32(status))
	h.mux.HandleFunc("/", h.root)
	h.mux.HandleFunc("/health", h.getHealth)
	h.mux.HandleFunc("/admin/health", h.setHealth)
	h.mux.HandleFunc("/echo", h.echo)
	h.mux.HandleFunc("/sse", h.sse)
	h.mux.HandleFunc("/slow", h.slow)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", h.name)
	h.mux.ServeHTTP(w, r)
}

// root answers every path without a route of its own with the name.
func (h *handler) root(w http.ResponseWriter, r *http.Request) {
	if !pause(w, r, h.delay) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, h.name+"\n")
}

// getHealth answers with the current health status. The body is "ok" for
// 2xx codes, which is what Consul treats as passing, and "unhealthy"
// otherwise. Note that net/http sends 1xx codes (other than 101) as
// informational responses followed by an implicit 200.
func (h *handler) getHealth(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	code := int(h.health.Load())
	body := "unhealthy\n"
	if code >= 200 && code < 300 {
		body = "ok\n"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// setHealth sets the status later /health requests answer with, taken from
// the "status" query (or form) parameter.
func (h *handler) setHealth(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	raw := r.FormValue("status")
	if raw == "" {
		http.Error(w, "missing status parameter, e.g. POST /admin/health?status=500", http.StatusBadRequest)
		return
	}
	code, err := parseStatus(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.health.Store(int32(code))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "health status set to %d\n", code)
}

// echoResponse is the JSON document /echo answers with.
type echoResponse struct {
	Name    string      `json:"name"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
}

// echo describes the request it received: method, path, host, headers and
// body (at most maxEchoBody bytes; larger bodies get 413).
func (h *handler) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBody))
	if err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !pause(w, r, h.delay) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(echoResponse{
		Name:    h.name,
		Method:  r.Method,
		Path:    r.URL.Path,
		Host:    r.Host,
		Headers: r.Header,
		Body:    string(body),
	})
}

// sse streams ?n= server-sent events "data: 1" .. "data: n", flushing each
// one as it is written, the first at once and the rest ?interval= apart.
// The stream stops early when the request is cancelled.
func (h *handler) sse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := intParam(q, "n", defaultSSECount, 0, maxSSECount)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	interval, err := durationParam(q, "interval", defaultSSEInterval)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for i := 1; i <= n; i++ {
		if i > 1 && sleepCtx(r.Context(), interval) != nil {
			return
		}
		fmt.Fprintf(w, "data: %d\n\n", i)
		if err := rc.Flush(); err != nil {
			return // not streamable, or the client went away
		}
	}
}

// slow answers after ?d= (default 1s), or with 503 as soon as the request is
// cancelled.
func (h *handler) slow(w http.ResponseWriter, r *http.Request) {
	d, err := durationParam(r.URL.Query(), "d", defaultSlow)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !pause(w, r, d) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s slept %s\n", h.name, d)
}

// parseStatus parses s as an HTTP status code in the range 100-599.
func parseStatus(s string) (int, error) {
	code, err := strconv.Atoi(s)
	if err != nil || !validStatus(code) {
		return 0, fmt.Errorf("invalid status %q: want an HTTP status code between 100 and 599", s)
	}
	return code, nil
}

// validStatus reports whether code is in the range 100-599.
func validStatus(code int) bool { return code >= 100 && code <= 599 }

// intParam returns query parameter key as an int in [lo, hi], or def when
// the parameter is absent.
func intParam(q url.Values, key string, def, lo, hi int) (int, error) {
	raw := q.Get(key)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("invalid %s %q: want an integer between %d and %d", key, raw, lo, hi)
	}
	return v, nil
}

// durationParam returns query parameter key as a non-negative duration such
// as "250ms", or def when the parameter is absent.
func durationParam(q url.Values, key string, def time.Duration) (time.Duration, error) {
	raw := q.Get(key)
	if raw == "" {
		return def, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s %q: want a non-negative duration such as 250ms or 2s", key, raw)
	}
	return d, nil
}

// allowMethods reports whether r uses one of methods; if not, it answers 405
// with an Allow header.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	allowed := strings.Join(methods, ", ")
	w.Header().Set("Allow", allowed)
	http.Error(w, fmt.Sprintf("method %s not allowed, use %s", r.Method, allowed), http.StatusMethodNotAllowed)
	return false
}

// pause waits d, reporting whether the handler should go on. If the request
// is cancelled first it answers 503 and reports false.
func pause(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	if err := sleepCtx(r.Context(), d); err != nil {
		http.Error(w, "request cancelled while waiting: "+err.Error(), http.StatusServiceUnavailable)
		return false
	}
	return true
}

// sleepCtx waits d or until ctx is done, returning ctx's cause in the latter
// case. A non-positive d returns nil at once.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
