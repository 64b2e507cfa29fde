package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/switchyard-gw/switchyard/h1"
)

// passive counts the outcome of one attempt against u: connection errors
// and 502/503/504 are failures; anything else, 4xx included, resets the
// count. Failures caused by the client (gone, body error) do not count,
// nor does a kept-alive connection the upstream closed while idle: that
// is how keep-alive ends, and the request is sent again. It reports
// whether u was ejected.
func (g *Gateway) passive(req *http.Request, st *reqState, u *Upstream, status int, err error) bool {
	var why string
	switch {
	case err != nil:
		if req.Context().Err() != nil || st.bodyErr != nil || errors.Is(err, h1.ErrStaleConn) {
			return false
		}
		why = failureReason(err)
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		why = "status " + strconv.Itoa(status)
	default:
		if u.fails.Load() != 0 {
			u.fails.Store(0)
		}
		return false
	}
	if n := u.fails.Add(1); n == g.ejectAfter {
		if !g.ejector.Eject(u.Service, u.ID, fmt.Sprintf("%d consecutive failed requests, last: %s", n, why)) {
			u.fails.Store(0) // refused (max_ejection_percent): count afresh
			return false
		}
		return true
	}
	return false
}

// failureReason keeps the part of a transport error an operator needs,
// saying whether it happened while connecting.
func failureReason(err error) string {
	if h1.Classify(err).Unsent() {
		return "dial: " + h1.Reason(err)
	}
	return h1.Reason(err)
}
