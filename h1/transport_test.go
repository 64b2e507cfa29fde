package h1

import (
	"bufio"
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

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// countingBackend counts the TCP connections it accepts.
func countingBackend(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

// newTestTransport returns a Transport with test timeouts; its fallback
// is a plain net/http Transport.
func newTestTransport(t *testing.T, respHeaderTimeout time.Duration) *Transport {
	tr := NewTransport(TransportOptions{
		Dial:                  (&net.Dialer{Timeout: time.Second}).DialContext,
		ResponseHeaderTimeout: respHeaderTimeout,
		IdleTimeout:           time.Minute,
		MaxIdlePerHost:        8,
		Fallback:              &http.Transport{Proxy: nil, DisableCompression: true},
	})
	t.Cleanup(tr.Close)
	return tr
}

func roundTrip(t *testing.T, tr http.RoundTripper, method, url string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestTransportReusesOneConnectionForSequentialRequestsOfEveryBodyKind(t *testing.T) {
	be, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part1 "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/early":
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "final")
		default:
			io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" host="+r.Host+" x="+r.Header.Get("X-Test"))
		}
	})
	tr := newTestTransport(t, 2*time.Second)
	req, _ := http.NewRequest("GET", be.URL+"/a?b=c", nil)
	req.Host = "front.example"
	req.Header.Set("X-Test", "1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "GET /a?b=c host=front.example x=1" {
		t.Fatalf("backend saw %q", b)
	}
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/chunked", "part1 part2"},
		{"GET", "/empty", ""},
		{"HEAD", "/x", ""},
		{"GET", "/early", "final"},
		{"DELETE", "/d", "DELETE /d host=" + strings.TrimPrefix(be.URL, "http://") + " x="},
	} {
		if _, got, _ := roundTrip(t, tr, c.method, be.URL+c.path); got != c.want {
			t.Fatalf("%s %s: %q, want %q", c.method, c.path, got, c.want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 6 sequential requests, want 1", n)
	}
}

// A response whose body came in full with its head leaves the response
// head deadline on the pooled connection; the next exchange sets its own
// before any read or write, so a passed one does no harm.
func TestTransportReusesAConnectionWhosePassedDeadlineWasLeftOn(t *testing.T) {
	be, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	})
	tr := newTestTransport(t, 2*time.Second)
	addr := strings.TrimPrefix(be.URL, "http://")
	for i := range 3 {
		path := fmt.Sprintf("/%d", i)
		if _, got, _ := roundTrip(t, tr, "GET", be.URL+path); got != "ok "+path {
			t.Fatalf("request %d: %q", i, got)
		}
		tr.mu.Lock()
		idle := tr.idle[addr]
		tr.mu.Unlock()
		if len(idle) != 1 {
			t.Fatalf("request %d: %d idle connections, want 1", i, len(idle))
		}
		idle[0].SetReadDeadline(aLongTimeAgo) // as if the deadline left on had passed
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential requests, want 1", n)
	}
}

func TestTransportDoesNotReuseAConnectionTheUpstreamWillClose(t *testing.T) {
	be, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	tr := newTestTransport(t, 2*time.Second)
	for range 3 {
		if _, got, _ := roundTrip(t, tr, "GET", be.URL+"/"); got != "bye" {
			t.Fatalf("got %q", got)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want a new one per request", n)
	}
}

// dropsKeptConnections answers the first request on each connection and
// closes the connection, unanswered, when a second one arrives on it: an
// upstream that dropped a keep-alive just as it was reused (one it dropped
// while idle is found when the connection is taken, and not used).
func dropsKeptConnections(w http.ResponseWriter, r *http.Request, seen *sync.Map) bool {
	if _, again := seen.LoadOrStore(r.RemoteAddr, true); again {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return true
	}
	return false
}

func TestTransportReportsAKeptConnectionDroppedAsItWasReusedAsStaleAndSendsNothingAgain(t *testing.T) {
	var served atomic.Int32
	var seen sync.Map
	be, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if !dropsKeptConnections(w, r, &seen) {
			served.Add(1)
			io.WriteString(w, "ok")
		}
	})
	tr := newTestTransport(t, 2*time.Second)
	roundTrip(t, tr, "GET", be.URL+"/")
	req, _ := http.NewRequest("GET", be.URL+"/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrStaleConn) || Classify(err) != OtherFailure {
		t.Fatalf("RoundTrip on the closed connection: %v, want ErrStaleConn", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections after the stale one, want 1: the transport must not send again itself", n)
	}
	if _, got, _ := roundTrip(t, tr, "GET", be.URL+"/"); got != "ok" {
		t.Fatalf("got %q on a new connection", got)
	}
	if n, m := conns.Load(), served.Load(); n != 2 || m != 2 {
		t.Fatalf("%d connections, %d requests served; want 2 and 2", n, m)
	}
}

func TestTransportAbandonedBodyClosesTheConnection(t *testing.T) {
	be, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100000))
	})
	tr := newTestTransport(t, 2*time.Second)
	req, _ := http.NewRequest("GET", be.URL+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close() // unread bytes remain: the connection cannot be reused
	roundTrip(t, tr, "GET", be.URL+"/")
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestTransportClientCancellationAbortsAWaitingExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	be, _ := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	tr := newTestTransport(t, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", be.URL+"/", nil)
	errc := make(chan error, 1)
	go func() { _, err := tr.RoundTrip(req); errc <- err }()
	<-entered
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("RoundTrip succeeded after cancellation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip still waiting 5s after the client went away")
	}
}

func TestTransportSendsRequestsWithBodiesThroughTheFallback(t *testing.T) {
	be, _ := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	tr := newTestTransport(t, 2*time.Second)
	req, _ := http.NewRequest("POST", be.URL+"/", strings.NewReader("payload"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST payload" {
		t.Fatalf("got %q", b)
	}
}

func TestTransportRejectsAnEndlessResponseHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Junk: " + strings.Repeat("j", 1000) + "\r\n"
		for range 2000 { // 2 MB of headers
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
		io.Copy(io.Discard, c) // until the gateway gives up and closes
	}()
	tr := newTestTransport(t, 2*time.Second)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Fatalf("RoundTrip error = %v, want the response head limit", err)
	}
}

// rawUpstream serves one connection with serve and returns its address;
// the test waits for serve to return.
func rawUpstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// roundTripWithin fails the test when RoundTrip and reading the body take
// longer than d: the exchange is waiting for a wake-up that never comes.
// It then cancels the request, which ends the wait.
func roundTripWithin(t *testing.T, tr *Transport, req *http.Request, d time.Duration) (*http.Response, string, error) {
	t.Helper()
	type result struct {
		resp *http.Response
		body string
		err  error
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	req = req.WithContext(ctx)
	ch := make(chan result, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- result{resp, string(b), err}
	}()
	select {
	case r := <-ch:
		return r.resp, r.body, r.err
	case <-time.After(d):
		cancel()
		r := <-ch
		t.Fatalf("the exchange still waited after %v (then: %v)", d, r.err)
		return nil, "", nil
	}
}

// An upstream whose bytes are already waiting on a new connection before
// the request is written: the exchange reads them (as it always did)
// instead of waiting for readability that was signalled before it
// started waiting.
func TestTransportReadsWhatANewConnectionHadWaitingWithoutWaitingForMore(t *testing.T) {
	addr := rawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
		http.ReadRequest(bufio.NewReader(c))
		io.Copy(io.Discard, c) // until the transport closes
	})
	tr := NewTransport(TransportOptions{
		Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			// Let the early response arrive, and the poller see it.
			testenv.WaitFor(t, 5*time.Second, "the early response", func() bool { return !AtBoundary(c) })
			return c, nil
		},
		MaxIdlePerHost: 1,
		Fallback:       http.DefaultTransport,
	})
	t.Cleanup(tr.Close)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	_, body, err := roundTripWithin(t, tr, req, 5*time.Second)
	if err != nil || body != "early" {
		t.Fatalf("RoundTrip: %q, %v; want the waiting response", body, err)
	}
}

// A request larger than the socket's send buffer is written in part by
// the folded write and the rest by the ordinary one, in order.
func TestTransportWritesARequestLargerThanTheSocketBufferWhole(t *testing.T) {
	big := strings.Repeat("b", 8<<20)
	got := make(chan string, 1)
	addr := rawUpstream(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReaderSize(c, 64<<10))
		if err != nil {
			got <- err.Error()
			return
		}
		got <- req.Header.Get("X-Big")
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		io.Copy(io.Discard, c)
	})
	tr := newTestTransport(t, 10*time.Second)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Big", big)
	_, body, err := roundTripWithin(t, tr, req, 20*time.Second)
	if err != nil || body != "ok" {
		t.Fatalf("RoundTrip: %q, %v", body, err)
	}
	if h := <-got; h != big {
		t.Fatalf("the upstream read a header of %d bytes, want %d", len(h), len(big))
	}
}
