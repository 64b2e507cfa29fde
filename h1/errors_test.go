package h1

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
)

// timeoutError is a net.Error that timed out, as a deadline's is.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func dialErr(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }

func readErr(err error) error { return &net.OpError{Op: "read", Net: "tcp", Err: err} }

// clientErr wraps err as http.Client.Do does.
func clientErr(err error) error { return &url.Error{Op: "Get", URL: "http://192.0.2.1/", Err: err} }

func TestUpstreamErrorsAreClassifiedByTypeNotText(t *testing.T) {
	refused := os.NewSyscallError("connect", syscall.ECONNREFUSED)
	reset := os.NewSyscallError("read", syscall.ECONNRESET)
	for _, tc := range []struct {
		name   string
		err    error
		want   Failure
		reason string
	}{
		{"no error is no failure", nil, NoFailure, ""},
		{"a refused dial sent nothing", dialErr(refused), DialFailed, "connection refused"},
		{"a refused dial seen through http.Client sent nothing", clientErr(dialErr(refused)), DialFailed, "connection refused"},
		{"an unknown host is a dial failure", dialErr(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}), DialFailed, "no such host"},
		{"a dial that timed out sent nothing and is a timeout", dialErr(timeoutError{}), DialTimeout, "timeout"},
		{"a dial cancelled by the client is the client going away", dialErr(fmt.Errorf("operation was canceled: %w", context.Canceled)), Canceled, "canceled"},
		{"a cancelled context is the client going away", context.Canceled, Canceled, "canceled"},
		{"a deadline is a timeout", clientErr(context.DeadlineExceeded), TimedOut, "timeout"},
		{"a read deadline is a timeout", readErr(timeoutError{}), TimedOut, "timeout"},
		{"a reset after sending is some other failure", readErr(reset), OtherFailure, "connection reset by peer"},
		{"an upstream closing early is some other failure", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), OtherFailure, "EOF"},
		{"a stale keep-alive is some other failure", fmt.Errorf("%w: %w", ErrStaleConn, io.EOF), OtherFailure, "EOF"},
		{"a text that only looks like a refusal is not one", errors.New("dial tcp: connection refused"), OtherFailure, "dial tcp: connection refused"},
		{"a malformed response keeps its text", errors.New(`malformed HTTP status code "x"`), OtherFailure, `malformed HTTP status code "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %d, want %d", tc.err, got, tc.want)
			}
			if got := Reason(tc.err); got != tc.reason {
				t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.reason)
			}
		})
	}
}

func TestARealRefusedDialIsADialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = (&net.Dialer{}).DialContext(context.Background(), "tcp", addr)
	if f := Classify(err); f != DialFailed || !f.Unsent() || Reason(err) != "connection refused" {
		t.Fatalf("dialing a closed port: %v classified %d (%q), want a refused dial", err, f, Reason(err))
	}
}
