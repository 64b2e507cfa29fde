package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"250m", 250 * time.Millisecond, true},
		{"99999999u", 99999999 * time.Microsecond, true},
		{"2H", 2 * time.Hour, true},
		{"3M", 3 * time.Minute, true},
		{"10n", 10, true},
		{"99999999H", time.Duration(1<<63 - 1).Truncate(time.Hour), true},
		{"", 0, false},
		{"S", 0, false},
		{"100", 0, false},
		{"123456789S", 0, false}, // nine digits
		{"1s", 0, false},         // units are case-sensitive
		{"-1S", 0, false},
		{"+1S", 0, false},
		{"1.5S", 0, false},
	}
	for _, tc := range tests {
		got, ok := grpcTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":               true,
		"application/grpc+proto":         true,
		"application/grpc;charset=utf-8": true,
		"application/grpc-web":           false,
		"application/grpc-web+proto":     false,
		"application/json":               false,
		"":                               false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/pkg.Svc/M", nil)
		r.Header.Set("Content-Type", ct)
		if got := isGRPC(r); got != want {
			t.Errorf("isGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestGRPCErrorIsATrailersOnlyResponse(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "5")
	if got := writeGRPCError(rec, http.StatusServiceUnavailable, `no healthy instance of service "100%é"`); got != http.StatusServiceUnavailable {
		t.Fatalf("returned %d, want the status the error stands for", got)
	}
	h := rec.Result().Header
	if rec.Code != 200 || h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "14" || rec.Body.Len() != 0 || h.Get("Retry-After") != "" {
		t.Fatalf("status %d headers %v body %q", rec.Code, h, rec.Body.String())
	}
	if got, want := h.Get("Grpc-Message"), `switchyard: no healthy instance of service "100%25%C3%A9"`; got != want {
		t.Fatalf("grpc-message = %q, want %q", got, want)
	}
}

func TestGRPCServiceOf(t *testing.T) {
	for in, want := range map[string]string{
		"/grpc.testing.TestService/UnaryCall": "grpc.testing.TestService",
		"/x":                                  "x",
		"/":                                   "",
	} {
		if got := grpcServiceOf(in); got != want {
			t.Errorf("grpcServiceOf(%q) = %q, want %q", in, got, want)
		}
	}
}
