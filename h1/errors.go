package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// Failure is what went wrong talking to an upstream, in the terms the
// callers branch on: whether anything was sent, whether time ran out,
// whether the caller went away. Classify is the one place that reads an
// error this way; the gateway (retries, status, passive health), the
// health checker and telemetry all use it.
type Failure uint8

const (
	NoFailure    Failure = iota // err was nil
	Canceled                    // the caller's context was cancelled: the client went away
	DialFailed                  // connecting failed (refused, unreachable, no such host): nothing was sent
	DialTimeout                 // connecting timed out: nothing was sent
	TimedOut                    // the upstream did not answer in time
	OtherFailure                // anything else: reset, EOF, a malformed response
)

// Classify reads err, as returned by a Transport, net/http's Transport
// or Client, or a net.Dialer, with errors.Is and errors.As only.
func Classify(err error) Failure {
	if err == nil {
		return NoFailure // without classify's two heap-allocated targets
	}
	return classify(err)
}

func classify(err error) Failure {
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.As(err, &op) && op.Op == "dial":
		if op.Timeout() {
			return DialTimeout
		}
		return DialFailed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return TimedOut
	}
	return OtherFailure
}

// Unsent reports whether the failure happened before any byte of the
// request left: a dial error.
func (f Failure) Unsent() bool { return f == DialFailed || f == DialTimeout }

// Timeout reports whether time ran out, connecting or waiting.
func (f Failure) Timeout() bool { return f == DialTimeout || f == TimedOut }

// Reason returns the cause of err in the words an operator needs:
// "timeout", "connection refused", "connection reset by peer",
// "no such host", "EOF", or err's own text when none fits. "" for nil.
func Reason(err error) string {
	var dns *net.DNSError
	var errno syscall.Errno
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case Classify(err).Timeout():
		return "timeout"
	case errors.As(err, &dns) && dns.IsNotFound:
		return "no such host"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return err.Error()
}

// ErrStaleConn marks a failure on a reused keep-alive connection before
// any byte of the response arrived: most likely the upstream closed it
// while it was idle in the pool, and the request went nowhere. The
// transport does not send the request again itself; the caller decides
// (the error also wraps the underlying one).
var ErrStaleConn = errors.New("kept-alive upstream connection closed before responding")

// staleConnError reports whether err, on a reused connection with nothing
// read yet, looks like the upstream closed it while idle.
func staleConnError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &op) && (op.Op == "read" || op.Op == "write"))
}
