package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestAttemptOutcomesAreNamedAsTheGatewayReadsErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name   string
		status int
		err    error
		want   string
	}{
		{"a 200 is ok", 200, nil, "ok"},
		{"a 404 is ok: the instance answered", 404, nil, "ok"},
		{"a 503 is 5xx", 503, nil, "5xx"},
		{"a refused dial is a dial error", 0, refused, "dial_error"},
		{"a deadline is a timeout", 0, fmt.Errorf("awaiting headers: %w", context.DeadlineExceeded), "timeout"},
		{"a client going away is canceled", 0, context.Canceled, "canceled"},
		{"a reset after sending is an error", 0, fmt.Errorf("reading: %w", io.EOF), "error"},
		{"a message that mentions a dial is not a dial error", 0, errors.New("dial tcp: connection refused"), "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := outcomes[attemptOutcome(tc.status, tc.err)]; got != tc.want {
				t.Fatalf("attemptOutcome(%d, %v) = %q, want %q", tc.status, tc.err, got, tc.want)
			}
		})
	}
}
