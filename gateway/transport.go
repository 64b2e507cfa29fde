package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// NewTransport returns the upstream transport with every timeout set on
// purpose. HTTP/1.1 to upstreams; compression left to the endpoints.
func NewTransport(c config.Proxy) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never route upstream traffic through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   c.DialTimeout, // a dead host fails fast and is retried elsewhere
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no global cap; the per-host cap bounds it
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		IdleConnTimeout:       c.IdleConnTimeout,       // release keep-alives upstreams may have dropped
		ResponseHeaderTimeout: c.ResponseHeaderTimeout, // a hung upstream becomes 504, not a hang
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		ForceAttemptHTTP2:     false,
	}
}

// retryTransport picks the upstream for each attempt and retries failed
// attempts on a different instance when that is safe (see retryable).
type retryTransport struct {
	g    *Gateway
	base http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(stateKey{}).(*reqState)
	if req.Body != nil && req.Body != http.NoBody {
		// The transport closes the body on a dial error; keep it usable.
		st.body = &retryBody{rc: req.Body}
		req.Body = st.body
	}
	var lastErr error
	for n := 0; n <= t.g.retries; n++ {
		var u *Upstream
		if n == 0 {
			u = st.pool.pick()
		} else {
			u = st.pool.retryPick(st.tried)
		}
		if u == nil {
			break // every healthy instance was tried
		}
		st.tried = append(st.tried, u)
		// The outgoing request belongs to this proxy: set the host in place.
		req.URL.Host = u.Address
		var done func(int, error)
		if h := t.g.hooks.Attempt; h != nil {
			done = h(req, Attempt{Upstream: u, N: n, Healthy: len(st.pool.upstreams), Panic: st.pool.panic})
		}
		resp, err := t.base.RoundTrip(req)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		if done != nil {
			done(status, err)
		}
		if t.g.ejectAfter > 0 && t.g.ejector != nil {
			t.g.passive(req, st, u, status, err)
		}
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !retryable(req, st, err) {
			break
		}
	}
	if lastErr == nil {
		lastErr = errNoUpstream
	}
	return nil, lastErr
}

var errNoUpstream = errors.New("no healthy upstream left to try")

// retryable reports whether a failed attempt may be repeated elsewhere: a
// dial error sent nothing, so any method with an untouched body; any other
// failure before a response (reset, EOF) only for safe methods without a
// body. Timeouts are not retried: the client already waited the budget.
func retryable(req *http.Request, st *reqState, err error) bool {
	if req.Context().Err() != nil || st.bodyErr != nil {
		return false
	}
	if st.body != nil && st.body.touched.Load() {
		return false
	}
	if isDialError(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return st.body == nil
	}
	return false
}

// passive counts the outcome of one attempt against u: connection errors
// and 502/503/504 are failures; anything else, 4xx included, resets the
// count. Failures caused by the client (gone, body error) do not count.
func (g *Gateway) passive(req *http.Request, st *reqState, u *Upstream, status int, err error) {
	var why string
	switch {
	case err != nil:
		if req.Context().Err() != nil || st.bodyErr != nil {
			return
		}
		why = shortError(err)
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		why = "status " + strconv.Itoa(status)
	default:
		if u.fails.Load() != 0 {
			u.fails.Store(0)
		}
		return
	}
	if n := u.fails.Add(1); n == g.ejectAfter {
		if !g.ejector.Eject(u.Service, u.ID, fmt.Sprintf("%d consecutive failed requests, last: %s", n, why)) {
			u.fails.Store(0) // refused (max_ejection_percent): count afresh
		}
	}
}

// shortError keeps the part of a transport error an operator needs.
func shortError(err error) string {
	var ne net.Error
	switch {
	case isDialError(err):
		var op *net.OpError
		errors.As(err, &op)
		return "dial: " + op.Err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// isDialError reports whether err happened before anything was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// classify maps an upstream error to the status and message for the client;
// status 0 means the client is gone and nothing should be written.
func classify(ctx context.Context, err error) (int, string) {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return 0, ""
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout, "upstream timed out"
	}
	if errors.Is(err, errNoUpstream) {
		return http.StatusServiceUnavailable, "no healthy upstream left to try"
	}
	return http.StatusBadGateway, "upstream failed"
}

// retryBody wraps the outgoing body so it survives a failed dial: the
// transport closes the body on error, but a dial error means it was never
// read, so the next attempt can send it. ReverseProxy and the server close
// the real body when the request ends.
type retryBody struct {
	rc      io.ReadCloser
	touched atomic.Bool
}

func (b *retryBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	return b.rc.Read(p)
}

func (b *retryBody) Close() error { return nil }
