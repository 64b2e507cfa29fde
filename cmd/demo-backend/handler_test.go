package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// serve runs one request through h and returns the recorded response.
func serve(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name         string
		status       int // initial health status; 0 means 200
		method       string
		target       string
		wantCode     int
		wantBody     string // exact, unless wantContains
		wantContains bool
		wantType     string // Content-Type prefix, if set
	}{
		{name: "root answers name", method: "GET", target: "/", wantCode: 200, wantBody: "blue\n", wantType: "text/plain"},
		{name: "unknown path answers name", method: "GET", target: "/some/where?x=1", wantCode: 200, wantBody: "blue\n"},
		{name: "root any method", method: "POST", target: "/", wantCode: 200, wantBody: "blue\n"},
		{name: "health initially ok", method: "GET", target: "/health", wantCode: 200, wantBody: "ok\n"},
		{name: "health initially unhealthy", status: 503, method: "GET", target: "/health", wantCode: 503, wantBody: "unhealthy\n"},
		{name: "health rejects POST", method: "POST", target: "/health", wantCode: 405, wantBody: "not allowed", wantContains: true},
		{name: "admin health sets status", method: "POST", target: "/admin/health?status=500", wantCode: 200, wantBody: "health status set to 500\n"},
		{name: "admin health non-numeric", method: "POST", target: "/admin/health?status=bad", wantCode: 400, wantBody: `invalid status "bad": want an HTTP status code between 100 and 599`, wantContains: true},
		{name: "admin health out of range", method: "POST", target: "/admin/health?status=600", wantCode: 400, wantBody: `invalid status "600"`, wantContains: true},
		{name: "admin health below range", method: "POST", target: "/admin/health?status=99", wantCode: 400, wantBody: `invalid status "99"`, wantContains: true},
		{name: "admin health missing status", method: "POST", target: "/admin/health", wantCode: 400, wantBody: "missing status parameter", wantContains: true},
		{name: "admin health rejects GET", method: "GET", target: "/admin/health?status=500", wantCode: 405, wantBody: "use POST", wantContains: true},
		{name: "sse bad count", method: "GET", target: "/sse?n=-1", wantCode: 400, wantBody: `invalid n "-1"`, wantContains: true},
		{name: "sse bad interval", method: "GET", target: "/sse?interval=soon", wantCode: 400, wantBody: `invalid interval "soon"`, wantContains: true},
		{name: "sse zero events", method: "GET", target: "/sse?n=0", wantCode: 200, wantBody: "", wantType: "text/event-stream"},
		{name: "slow answers after d", method: "GET", target: "/slow?d=1ms", wantCode: 200, wantBody: "blue slept 1ms\n"},
		{name: "slow bad duration", method: "GET", target: "/slow?d=-1s", wantCode: 400, wantBody: `invalid d "-1s"`, wantContains: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			rec := serve(t, newHandler("blue", 0, status), tt.method, tt.target, "")

			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Body.String(); tt.wantContains && !strings.Contains(got, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", got, tt.wantBody)
			} else if !tt.wantContains && got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if got := rec.Header().Get("X-Backend"); got != "blue" {
				t.Errorf("X-Backend = %q, want %q", got, "blue")
			}
			if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, tt.wantType) {
				t.Errorf("Content-Type = %q, want prefix %q", got, tt.wantType)
			}
		})
	}
}

func TestHealthFlip(t *testing.T) {
	h := newHandler("blue", 0, http.StatusOK)
	steps := []struct {
		method, target string
		wantCode       int
		wantBody       string
	}{
		{"GET", "/health", 200, "ok\n"},
		{"POST", "/admin/health?status=500", 200, "health status set to 500\n"},
		{"GET", "/health", 500, "unhealthy\n"},
		{"POST", "/admin/health?status=bogus", 400, "invalid status \"bogus\": want an HTTP status code between 100 and 599\n"},
		{"GET", "/health", 500, "unhealthy\n"}, // a rejected update changes nothing
		{"POST", "/admin/health?status=299", 200, "health status set to 299\n"},
		{"GET", "/health", 299, "ok\n"}, // any 2xx is healthy
		{"POST", "/admin/health?status=200", 200, "health status set to 200\n"},
		{"GET", "/health", 200, "ok\n"},
	}
	for i, s := range steps {
		rec := serve(t, h, s.method, s.target, "")
		if rec.Code != s.wantCode || rec.Body.String() != s.wantBody {
			t.Fatalf("step %d: %s %s = %d %q, want %d %q", i, s.method, s.target, rec.Code, rec.Body.String(), s.wantCode, s.wantBody)
		}
	}
}

func TestEcho(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
	}{
		{"post with body", "POST", `{"hello":"world"}`},
		{"get without body", "GET", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/echo?q=1", strings.NewReader(tt.body))
			req.Host = "backend.test"
			req.Header.Add("X-Multi", "a")
			req.Header.Add("X-Multi", "b")
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			newHandler("blue", 0, http.StatusOK).ServeHTTP(rec, req)

			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", rec.Code, rec.Body.String())
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var got echoResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decoding %q: %v", rec.Body.String(), err)
			}
			if got.Name != "blue" || got.Method != tt.method || got.Path != "/echo" || got.Host != "backend.test" || got.Body != tt.body {
				t.Errorf("echo = %+v, want name blue, method %s, path /echo, host backend.test, body %q", got, tt.method, tt.body)
			}
			if v := got.Headers["X-Multi"]; !slices.Equal(v, []string{"a", "b"}) {
				t.Errorf("headers[X-Multi] = %q, want [a b]", v)
			}
			if v := got.Headers["Content-Type"]; !slices.Equal(v, []string{"application/json"}) {
				t.Errorf("headers[Content-Type] = %q, want [application/json]", v)
			}
		})
	}
}

func TestEchoBodyTooLarge(t *testing.T) {
	rec := serve(t, newHandler("blue", 0, http.StatusOK), "POST", "/echo", strings.Repeat("x", maxEchoBody+1))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", rec.Code)
	}
}

// readEvent reads one server-sent event (up to its blank line) from r.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading event after %q: %v", lines, err)
		}
		if line == "\n" {
			return strings.Join(lines, "")
		}
		lines = append(lines, line)
	}
}

func TestSSEStreamsIncrementally(t *testing.T) {
	srv := httptest.NewServer(newHandler("blue", 0, http.StatusOK))
	defer srv.Close()

	// With an hour between events, the stream cannot have ended when the
	// first event arrives: receiving it proves events are flushed one by one.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sse?n=3&interval=1h", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	if got := readEvent(t, bufio.NewReader(resp.Body)); got != "data: 1\n" {
		t.Errorf("first event = %q, want %q", got, "data: 1\n")
	}
	// Cancelling ends the handler's wait; srv.Close then waits for it.
	cancel()
}

func TestSSEDeliversAllEvents(t *testing.T) {
	srv := httptest.NewServer(newHandler("blue", 0, http.StatusOK))
	defer srv.Close()

	tests := []struct {
		target string
		want   string
	}{
		{"/sse?interval=1ms", "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\n"},
		{"/sse?n=2&interval=0s", "data: 1\n\ndata: 2\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + tt.target)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.want {
				t.Errorf("body = %q, want %q", body, tt.want)
			}
		})
	}
}

// waitServe runs h on req in a goroutine and returns its recorder once the
// handler returns, failing the test if that takes unreasonably long.
func waitServe(t *testing.T, h http.Handler, req *http.Request, cancel context.CancelFunc) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	cancel()
	select {
	case <-done:
		return rec
	case <-time.After(10 * time.Second): // failure guard, not synchronisation
		t.Fatal("handler did not return after the request was cancelled")
		return nil
	}
}

func TestWaitsRespectCancellation(t *testing.T) {
	tests := []struct {
		name   string
		delay  time.Duration
		target string
	}{
		{"slow", 0, "/slow?d=1h"},
		{"root delay", time.Hour, "/"},
		{"echo delay", time.Hour, "/echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			req := httptest.NewRequestWithContext(ctx, "GET", tt.target, nil)
			rec := waitServe(t, newHandler("blue", tt.delay, http.StatusOK), req, cancel)
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503", rec.Code)
			}
			if want := "request cancelled while waiting: context canceled\n"; rec.Body.String() != want {
				t.Errorf("body = %q, want %q", rec.Body.String(), want)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	h := newHandler("blue", delay, http.StatusOK)
	for _, target := range []string{"/", "/echo"} {
		start := time.Now()
		rec := serve(t, h, "GET", target, "")
		// Timers never fire early, so this lower bound is not flaky.
		if elapsed := time.Since(start); elapsed < delay {
			t.Errorf("%s answered after %v, want at least %v", target, elapsed, delay)
		}
		if rec.Code != http.StatusOK {
			t.Errorf("%s status = %d, want 200", target, rec.Code)
		}
	}
}

func TestHealthNotDelayed(t *testing.T) {
	// A delayed route would answer 503 to an already-cancelled request.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/health", nil)
	rec := httptest.NewRecorder()
	newHandler("blue", time.Hour, http.StatusOK).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("/health = %d %q, want 200 \"ok\\n\"", rec.Code, rec.Body.String())
	}
}
