package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestProbeErrorsAreShortenedByTypeNotText(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: "http://192.0.2.1/health", Err: err} }
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a deadline says how long was waited", wrap(context.DeadlineExceeded), "timeout after 2s"},
		{"a refused connection says so", wrap(dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), "connection refused"},
		{"a reset says so", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), "connection reset by peer"},
		{"an unknown host says so", wrap(dial(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true})), "no such host"},
		{"an early close is EOF", wrap(fmt.Errorf("reading: %w", io.EOF)), "EOF"},
		{"a text that mentions a refusal is kept whole", errors.New("proxy said: connection refused"), "proxy said: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := probeError(tc.err, 2*time.Second)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Fatalf("probeError(%v) = %q, want %q wrapping the original", tc.err, got, tc.want)
			}
		})
	}
}
