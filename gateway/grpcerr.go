package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// This file holds what the gateway must know about gRPC without speaking
// it: how to recognise a gRPC request, how to read its deadline, and how to
// answer it with an error a gRPC client understands. Everything else about
// gRPC (framing, trailers, streams) passes through as HTTP/2.

// isGRPC reports whether r is a gRPC call: Content-Type application/grpc,
// optionally with a +codec suffix or parameters. gRPC-Web is not gRPC on
// the wire (its trailers travel in the body) and is not matched.
func isGRPC(r *http.Request) bool {
	ct := headerValue(r.Header, "Content-Type")
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	if !ok {
		return false
	}
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// grpcTimeout parses a grpc-timeout header: 1 to 8 digits and a unit (H,
// M, S, m, u, n). It reports false for an absent or malformed value, which
// gRPC servers treat as no deadline.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil || v[0] == '+' {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	// 8 digits of hours fit in a Duration only up to ~2.5e6 h: cap there.
	if max := uint64(1<<63-1) / uint64(unit); n > max {
		n = max
	}
	return time.Duration(n) * unit, true
}

// grpcCode maps a status the gateway itself decided on to the gRPC code a
// client sees (docs/grpc.md has the table). Statuses from an upstream are
// never mapped: its response passes through as it is.
func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusNotFound: // no route
		return codes.Unimplemented
	case http.StatusServiceUnavailable, http.StatusBadGateway: // no instance; connection failed
		return codes.Unavailable
	case http.StatusGatewayTimeout, http.StatusRequestTimeout: // upstream or client too slow
		return codes.DeadlineExceeded
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusBadRequest:
		return codes.Internal
	}
	return codes.Unknown
}

// writeGRPCError answers a gRPC call with a gateway error: HTTP 200 and
// the status in the headers, with no body (a "Trailers-Only" response),
// as gRPC requires. It returns status, the HTTP status the error stands
// for, so that logs and metrics still count it as the error it is.
func writeGRPCError(w http.ResponseWriter, status int, msg string) int {
	h := w.Header()
	h.Del("Retry-After")
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(grpcCode(status))))
	h.Set("Grpc-Message", grpcEncodeMessage("switchyard: "+msg))
	w.WriteHeader(http.StatusOK)
	return status
}

// answerError writes a gateway error in the form the client speaks: a
// gRPC status for a gRPC call, plain text otherwise. It returns status.
func answerError(w http.ResponseWriter, grpc bool, status int, msg string) int {
	if grpc {
		return writeGRPCError(w, status, msg)
	}
	return writeError(w, status, msg)
}

// grpcEncodeMessage percent-encodes msg for grpc-message: every byte
// outside printable ASCII, and '%' itself.
func grpcEncodeMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// grpcServiceOf returns the gRPC service a call's path names:
// "/pkg.Service/Method" gives "pkg.Service".
func grpcServiceOf(path string) string {
	s := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

// grpcBody ends a gRPC response whose upstream failed mid-stream (killed,
// reset, timed out) with a gRPC status in the trailers, as gRPC servers
// end calls, rather than with a stream reset the client can only read as
// INTERNAL. The client sees UNAVAILABLE, or DEADLINE_EXCEEDED when time
// ran out, with a grpc-message naming the service. A client that went
// away gets nothing. Read is called by ReverseProxy's copy, on the
// request's goroutine, which also reads resp.Trailer after the copy.
type grpcBody struct {
	io.ReadCloser
	resp    *http.Response
	st      *reqState
	service string
}

// wrapGRPCBody installs grpcBody on a gRPC response to a gRPC call.
func wrapGRPCBody(resp *http.Response, st *reqState) {
	if !st.grpc || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc") {
		return
	}
	resp.Body = &grpcBody{ReadCloser: resp.Body, resp: resp, st: st, service: st.route.svc.name}
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	ctx := b.resp.Request.Context()
	if errors.Is(ctx.Err(), context.Canceled) {
		return n, err // the client went away: nobody to tell
	}
	status, msg := upstreamStatus(ctx, err)
	if status == 0 {
		return n, err
	}
	b.st.status = status
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header{}
	}
	b.resp.Trailer.Set("Grpc-Status", strconv.Itoa(int(grpcCode(status))))
	b.resp.Trailer.Set("Grpc-Message", grpcEncodeMessage(fmt.Sprintf("switchyard: service %q: %s mid-stream", b.service, msg)))
	return n, io.EOF
}
