package gateway

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/switchyard-gw/switchyard/h1"
)

// retryTransport picks the upstream for each attempt and sends a failed
// request again when mayResend allows it: to the same instance when a
// kept-alive connection turned out closed (h1.ErrStaleConn), to a
// different one otherwise. A body that was read goes again from its
// recording (withReplay). Every attempt that reached the wire goes
// through attempt, so the hooks see each one.
type retryTransport struct {
	g    *Gateway
	base http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, req.Context().Value(stateKey{}).(*reqState))
}

// roundTrip is RoundTrip for a request whose state is known (the fast
// core's, gateway/fastproxy.go, whose context does not carry it).
func (t *retryTransport) roundTrip(req *http.Request, st *reqState) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		// The transport closes the body on a dial error; keep it usable.
		st.body = &retryBody{rc: req.Body}
		req.Body = st.body
		if st.proto != nil {
			st.replay = withReplay(req) // HTTP/2: refused streams may go again
		}
	}
	var lastErr error
	n := 0 // attempts made, re-sends on a stale connection included
	for retry := 0; retry <= t.g.retries; retry++ {
		var u *Upstream
		if retry == 0 {
			u = st.pool.pick()
		} else {
			u = st.pool.retryPick(st.tried)
		}
		if u == nil {
			break // every healthy instance was tried
		}
		st.tried = append(st.tried, u)
		for {
			if n > 0 && !rewind(req, st) {
				return nil, lastErr
			}
			resp, err := t.attempt(req, st, u, n)
			n++
			if err == nil {
				return resp, nil
			}
			lastErr = err
			if !retryable(req, st, err) {
				return nil, err
			}
			// The upstream closed an idle keep-alive: the same instance
			// gets the request again on another connection, without
			// spending a retry. Each such failure closes a pooled
			// connection, so this ends at the latest with a new one.
			if !errors.Is(err, h1.ErrStaleConn) {
				break
			}
		}
	}
	if lastErr == nil {
		lastErr = errNoUpstream
	}
	return nil, lastErr
}

// attempt sends req to u once, between the Attempt hook and its outcome,
// and counts the outcome for passive health. u counts the attempt in
// flight; a response keeps it counted until the request ends (st.active).
func (t *retryTransport) attempt(req *http.Request, st *reqState, u *Upstream, n int) (*http.Response, error) {
	// The outgoing request belongs to this proxy: set the host in place.
	req.URL.Host = u.Address
	var done AttemptEnd
	if h := t.g.hooks.Attempt; h != nil {
		a := st.pool.attempt(u, n)
		a.Direct = st.fast && t.g.wire != nil
		done = h(req, a)
	}
	base := t.base
	if st.proto != nil {
		base = st.proto.rt
	}
	u.inflight.Add(1)
	resp, err := base.RoundTrip(req)
	if err == nil {
		st.active = u // in flight until the response is copied
	} else {
		u.inflight.Add(-1)
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if done != nil {
		done.EndAttempt(status, err)
	}
	if t.g.ejectAfter > 0 && t.g.ejector != nil {
		if t.g.passive(req, st, u, status, err) && t.g.hooks.Ejected != nil {
			t.g.hooks.Ejected(req)
		}
	}
	return resp, err
}

// retryable reports whether a failed attempt may be repeated: not when the
// client went away or its body failed, otherwise as mayResend says.
func retryable(req *http.Request, st *reqState, err error) bool {
	if req.Context().Err() != nil || st.bodyErr != nil {
		return false
	}
	body := bodyNone
	if st.body != nil {
		body = bodyUnread
		if st.body.touched.Load() {
			body = bodyRead
			if st.replay != nil && st.replay.kept() {
				body = bodyKept
			}
		}
	}
	return mayResend(req.Method, marked(req, st), body, h1.Classify(err))
}

// marked reports whether req is a gRPC call to a method its service marks
// idempotent (services[].grpc.idempotent_methods). The method is the path
// the upstream is sent.
func marked(req *http.Request, st *reqState) bool {
	return st.grpc && st.proto != nil && st.proto.grpc && st.proto.up.GRPC.Idempotent(req.URL.Path)
}

// rewind makes req's body whole again before it is sent once more: a body
// reading began on goes again from its recording. It reports false when
// that is not possible (the recording was dropped meanwhile), and the
// request must not be sent again.
func rewind(req *http.Request, st *reqState) bool {
	if st.body == nil || !st.body.touched.Load() {
		return true
	}
	if st.replay == nil || req.GetBody == nil {
		return false
	}
	b, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = b
	return true
}

// bodyState is how much of a request body was sent.
type bodyState uint8

const (
	bodyNone   bodyState = iota // the request has no body
	bodyUnread                  // it has one, not read yet: it can go again
	bodyKept                    // reading began, and all that was read is recorded: it can be replayed
	bodyRead                    // reading began: part may have gone out, and it cannot be replayed
)

// mayResend is the one rule for sending a failed request again, to any
// instance and for any reason (retries and stale keep-alives alike). It is
// asked only about failures before the response's headers arrived (a
// transport returns an error or a response, never both), so nothing is
// ever re-sent once the upstream began to answer.
//
//   - a body part of which went out and that cannot be replayed: never;
//   - nothing was sent (a dial error): any method;
//   - the upstream timed out, or the client went away: never, the budget
//     is spent;
//   - anything else (a reset, EOF, a stale keep-alive, a closed
//     connection) may have reached the upstream: a call the configuration
//     marks idempotent (marked: a gRPC method in
//     services[].grpc.idempotent_methods), with its body whole or
//     recorded; otherwise only GET, HEAD, OPTIONS and TRACE without a
//     body.
//
// The last set is net/http's for its own re-sends (Request.isReplayable),
// without its Idempotency-Key opt-in. PUT and DELETE are idempotent by
// RFC 9110 but not re-sent: net/http does not, and a gateway cannot know
// that an upstream implements them idempotently; gRPC methods likewise
// only when the operator says so, as in Envoy's retry policy.
func mayResend(method string, marked bool, body bodyState, f h1.Failure) bool {
	switch {
	case body == bodyRead:
		return false
	case f.Unsent():
		return true
	case f.Timeout(), f == h1.Canceled:
		return false
	case marked:
		return true
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return body == bodyNone
	}
	return false
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
