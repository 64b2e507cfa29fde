package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/h1"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestAStaleKeepAliveIsSentAgainAndEachSendingIsAnAttempt(t *testing.T) {
	var served atomic.Int32
	var conns sync.Map
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		// The upstream drops the gateway's keep-alive as it is reused
		// (one dropped while idle is found when taken, and not used).
		if _, again := conns.LoadOrStore(r.RemoteAddr, true); again {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		served.Add(1)
		io.WriteString(w, "ok")
	})
	type call struct {
		n    int
		id   string
		err  error
		code int
	}
	var mu sync.Mutex
	var calls []call
	hooks := Hooks{Attempt: func(_ *http.Request, a Attempt) AttemptEnd {
		return AttemptEndFunc(func(status int, err error) {
			mu.Lock()
			calls = append(calls, call{a.N, a.Upstream.ID, err, status})
			mu.Unlock()
		})
	}}
	g, front := setup(t, Options{Hooks: hooks, EjectAfter: 1}, addr(be))
	ej := &ejectRecorder{}
	g.SetEjector(ej)
	if resp, body := get(t, front.URL+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	calls = nil
	mu.Unlock()
	if resp, body := get(t, front.URL+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("request on the dropped keep-alive: %d %q, want it sent again", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("attempt hook saw %d attempts, want 2 (the stale one and the re-send): %+v", len(calls), calls)
	}
	if c := calls[0]; c.n != 0 || !errors.Is(c.err, h1.ErrStaleConn) {
		t.Fatalf("first attempt %+v, want N=0 failing with ErrStaleConn", c)
	}
	if c := calls[1]; c.n != 1 || c.err != nil || c.code != 200 || c.id != calls[0].id {
		t.Fatalf("second attempt %+v, want N=1 answering 200 from the same instance", c)
	}
	if served.Load() != 2 {
		t.Fatalf("backend served %d requests, want 2", served.Load())
	}
	if got := ej.get(); len(got) != 0 {
		t.Fatalf("a keep-alive closed while idle counted against the instance: %q", got)
	}
}

func TestOneRuleDecidesWhatMayBeSentAgain(t *testing.T) {
	const marked, unmarked = true, false
	for _, tc := range []struct {
		name   string
		method string
		marked bool
		body   bodyState
		f      h1.Failure
		want   bool
	}{
		{"a POST whose dial failed goes again: nothing was sent", http.MethodPost, unmarked, bodyUnread, h1.DialFailed, true},
		{"a GET whose dial timed out goes again: nothing was sent", http.MethodGet, unmarked, bodyNone, h1.DialTimeout, true},
		{"a body already read never goes again, even after a dial error", http.MethodPut, unmarked, bodyRead, h1.DialFailed, false},
		{"a GET reset after sending goes again", http.MethodGet, unmarked, bodyNone, h1.OtherFailure, true},
		{"a HEAD reset after sending goes again", http.MethodHead, unmarked, bodyNone, h1.OtherFailure, true},
		{"an OPTIONS reset after sending goes again", http.MethodOptions, unmarked, bodyNone, h1.OtherFailure, true},
		{"a TRACE reset after sending goes again", http.MethodTrace, unmarked, bodyNone, h1.OtherFailure, true},
		{"a GET with a body reset after sending does not", http.MethodGet, unmarked, bodyUnread, h1.OtherFailure, false},
		{"a GET with a recorded body reset after sending does not: only marked calls replay", http.MethodGet, unmarked, bodyKept, h1.OtherFailure, false},
		{"a PUT reset after sending does not, as in net/http", http.MethodPut, unmarked, bodyNone, h1.OtherFailure, false},
		{"a DELETE reset after sending does not, as in net/http", http.MethodDelete, unmarked, bodyNone, h1.OtherFailure, false},
		{"a POST reset after sending does not", http.MethodPost, unmarked, bodyNone, h1.OtherFailure, false},
		{"a PATCH reset after sending does not", http.MethodPatch, unmarked, bodyNone, h1.OtherFailure, false},
		{"a GET that timed out does not: the budget is spent", http.MethodGet, unmarked, bodyNone, h1.TimedOut, false},
		{"a GET whose client went away does not", http.MethodGet, unmarked, bodyNone, h1.Canceled, false},
		{"an unmarked gRPC call reset after sending does not", http.MethodPost, unmarked, bodyKept, h1.OtherFailure, false},
		{"a marked gRPC call reset after sending goes again from its recorded body", http.MethodPost, marked, bodyKept, h1.OtherFailure, true},
		{"a marked gRPC call whose body was not read yet goes again", http.MethodPost, marked, bodyUnread, h1.OtherFailure, true},
		{"a marked gRPC call whose body outgrew the recording does not", http.MethodPost, marked, bodyRead, h1.OtherFailure, false},
		{"a marked gRPC call whose dial failed goes again", http.MethodPost, marked, bodyUnread, h1.DialFailed, true},
		{"a marked gRPC call that timed out does not: the deadline is spent", http.MethodPost, marked, bodyKept, h1.TimedOut, false},
		{"a marked gRPC call whose client went away does not", http.MethodPost, marked, bodyKept, h1.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayResend(tc.method, tc.marked, tc.body, tc.f); got != tc.want {
				t.Fatalf("mayResend(%s, %v, %d, %d) = %v, want %v", tc.method, tc.marked, tc.body, tc.f, got, tc.want)
			}
		})
	}
}

func TestUpstreamErrorsBecomeStatuses(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancelExpired()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"a client that went away gets nothing", canceled, context.Canceled, 0},
		{"a timeout is 504", live, fmt.Errorf("waiting: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"a dial timeout is 504", live, dialTimeout(), http.StatusGatewayTimeout},
		{"no instance left to try is 503", live, errNoUpstream, http.StatusServiceUnavailable},
		{"a reset is 502", live, fmt.Errorf("%w: %w", h1.ErrStaleConn, io.EOF), http.StatusBadGateway},
		{"anything else is 502", live, errors.New("malformed response"), http.StatusBadGateway},
		{"a reset once the call's own deadline has passed is 504", expired, errors.New("stream error: CANCEL; received from peer"), http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := upstreamStatus(tc.ctx, tc.err); got != tc.want {
				t.Fatalf("upstreamStatus(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// dialTimeout returns a real dial error that timed out: a deadline that
// has passed before the dial starts.
func dialTimeout() error {
	_, err := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "127.0.0.1:1")
	return err
}

func TestARetryDoesNotMoveTheRoundRobinForTheNextRequest(t *testing.T) {
	named := func(name string) *httptest.Server {
		return backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	_, front := setup(t, Options{}, testenv.DeadAddr(t), addr(named("a")), addr(named("b")))
	for i, want := range []string{"a", "a", "b"} { // dead->a (retry), a, b
		if resp, body := get(t, front.URL+"/"); resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q, want %q", i+1, resp.StatusCode, body, want)
		}
	}
}

func TestNetHTTPsTransportNeverReusesAConnection(t *testing.T) {
	var mu sync.Mutex
	var seen []string // method and client address per request
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.RemoteAddr)
		mu.Unlock()
	})
	_, front := setup(t, Options{}, addr(be))
	send := func(method string, body io.Reader, upgrade bool) {
		t.Helper()
		req, _ := http.NewRequest(method, front.URL+"/", body)
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			// Not websocket: net/http keeps those apart in a pool of
			// their own, other protocols share the pool with the rest.
			req.Header.Set("Upgrade", "example/1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send("POST", strings.NewReader("one"), false)
	send("GET", nil, true)
	send("POST", strings.NewReader("two"), false)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("backend saw %q, want 3 requests", seen)
	}
	addrOf := func(i int) string { return strings.Fields(seen[i])[1] }
	// It cannot prove a connection is at a message boundary when it
	// pools it, and it could send a request again unseen by the hooks.
	if addrOf(1) == addrOf(0) || addrOf(2) == addrOf(0) || addrOf(2) == addrOf(1) {
		t.Fatalf("backend saw %q: want each request with a body or an upgrade on a connection of its own", seen)
	}
}
