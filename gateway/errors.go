package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/switchyard-gw/switchyard/h1"
)

// How failures become answers to the client: upstream errors 502, 503 or
// 504, errors reading the client's body 4xx, and the plain-text body of
// every answer the gateway writes itself.

var (
	errNoUpstream   = errors.New("no healthy upstream left to try")
	errBodyTooLarge = errors.New("request body too large")
)

// errorHandler is the one place where upstream errors become statuses.
func (g *Gateway) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	g.upstreamError(w, r.Context(), st, err)
}

// upstreamError answers err for the request of ctx and st (nil: unknown).
func (g *Gateway) upstreamError(w http.ResponseWriter, ctx context.Context, st *reqState, err error) {
	status, msg := upstreamStatus(ctx, err)
	if st != nil && st.bodyErr != nil {
		status, msg = clientBodyStatus(st.bodyErr)
	}
	if status == 0 {
		return // client went away: nothing to answer
	}
	if st != nil {
		st.status = status
		g.log.Debug("upstream error", "route", st.route.name, "service", st.route.svc.name, "attempts", len(st.tried), "error", err)
	}
	if st != nil && st.grpc {
		msg = fmt.Sprintf("service %q: %s", st.route.svc.name, msg)
	}
	answerError(w, st != nil && st.grpc, status, msg)
}

// upstreamStatus maps an upstream error to the status and message for the
// client; status 0 means the client is gone and nothing should be written.
func upstreamStatus(ctx context.Context, err error) (int, string) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return 0, ""
	}
	switch {
	case h1.Classify(err).Timeout(), pastDeadline(ctx):
		return http.StatusGatewayTimeout, "upstream timed out"
	case errors.Is(err, errNoUpstream):
		return http.StatusServiceUnavailable, "no healthy upstream left to try"
	}
	return http.StatusBadGateway, "upstream failed"
}

// pastDeadline reports whether ctx carries a deadline (a gRPC call's
// grpc-timeout) that has passed. The upstream got the same grpc-timeout
// later than the gateway, so its side of the deadline (a gRPC server
// resets the stream with CANCEL) can only fire at or after the gateway's;
// its reset may still arrive before the gateway's own timer is seen to fire.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// clientBodyStatus maps an error reading the client's body to a 4xx.
func clientBodyStatus(err error) (int, string) {
	var ne net.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "request body too large"
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout, "request body not received in time"
	}
	return http.StatusBadRequest, "request body could not be read"
}

// writeError answers a gateway-generated error in plain text.
func writeError(w http.ResponseWriter, status int, msg string) int {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: %s\n", status, http.StatusText(status), msg)
	return status
}
