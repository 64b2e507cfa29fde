package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func testProxyConfig() config.Proxy {
	c := config.Default().Proxy
	c.DialTimeout = time.Second
	return c
}

// setup returns a gateway with route "/" to service "web" over addrs, in
// that round-robin order, served by an httptest server.
func setup(t *testing.T, opt Options, addrs ...string) (*Gateway, *httptest.Server) {
	t.Helper()
	if opt.Proxy.DialTimeout == 0 {
		opt.Proxy = testProxyConfig()
	}
	g, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	g.offset = func() uint64 { return 0 }
	var ins []discovery.Instance
	for i, a := range addrs {
		ins = append(ins, discovery.Instance{ID: fmt.Sprintf("web-%d", i+1), Address: a})
	}
	g.SetRoutes([]config.Route{{PathPrefix: "/", Service: "web"}})
	g.SetHealthy("web", ins, false)
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	return g, front
}

func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestUnknownRouteAnswers404(t *testing.T) {
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		t.Fatal(err)
	}
	g.SetRoutes([]config.Route{{PathPrefix: "/api", Service: "api"}})
	front := httptest.NewServer(g)
	defer front.Close()
	resp, body := get(t, front.URL+"/other")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404 (body %q)", resp.StatusCode, body)
	}
}

func TestServiceWithoutHealthyInstanceAnswers503WithRetryAfter(t *testing.T) {
	g, err := New(Options{Proxy: testProxyConfig(), RetryAfter: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g.SetRoutes([]config.Route{{PathPrefix: "/down", Service: "down"}, {PathPrefix: "/new", Service: "new"}})
	g.SetHealthy("down", nil, false) // all instances out of rotation
	front := httptest.NewServer(g)
	defer front.Close()
	for path, svc := range map[string]string{"/down": "down", "/new": "new"} {
		resp, body := get(t, front.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: status = %d, want 503", path, resp.StatusCode)
		}
		if got := resp.Header.Get("Retry-After"); got != "5" {
			t.Errorf("%s: Retry-After = %q, want 5", path, got)
		}
		if !strings.Contains(body, fmt.Sprintf("%q", svc)) {
			t.Errorf("%s: body %q does not name service %q", path, body, svc)
		}
	}
}

func TestDialErrorIsRetriedOnAnotherInstanceWithBodyIntact(t *testing.T) {
	var seen atomic.Int32
	live := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	var attempts []Attempt
	var mu sync.Mutex
	hooks := Hooks{Attempt: func(_ *http.Request, a Attempt) AttemptEnd {
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
		return nil
	}}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			seen.Store(0)
			mu.Lock()
			attempts = nil
			mu.Unlock()
			_, front := setup(t, Options{Hooks: hooks}, testenv.DeadAddr(t), addr(live))
			req, _ := http.NewRequest(method, front.URL+"/x", strings.NewReader("payload-123"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != method+" payload-123" {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, method+" payload-123")
			}
			if seen.Load() != 1 {
				t.Fatalf("live backend saw %d requests, want 1", seen.Load())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(attempts) != 2 || attempts[0].N != 0 || attempts[1].N != 1 || attempts[0].Upstream == attempts[1].Upstream {
				t.Fatalf("attempts = %+v, want two on different instances", attempts)
			}
		})
	}
}

func TestRetriesAreBoundedAndEndIn502(t *testing.T) {
	var n atomic.Int32
	hooks := Hooks{Attempt: func(*http.Request, Attempt) AttemptEnd { n.Add(1); return nil }}
	cfg := testProxyConfig()
	cfg.Retries = 2
	_, front := setup(t, Options{Proxy: cfg, Hooks: hooks}, testenv.DeadAddr(t), testenv.DeadAddr(t), testenv.DeadAddr(t), testenv.DeadAddr(t), testenv.DeadAddr(t))
	resp, _ := get(t, front.URL+"/")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	if n.Load() != 3 {
		t.Fatalf("%d attempts, want 1 + 2 retries", n.Load())
	}
}

func TestResetAfterTheRequestWasSentIsRetriedOnlyForSafeMethods(t *testing.T) {
	var resets, served atomic.Int32
	reset := backend(t, func(w http.ResponseWriter, r *http.Request) {
		resets.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close() // RST after the request arrived
		}
	})
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) { served.Add(1); io.WriteString(w, "ok") })
	_, front := setup(t, Options{}, addr(reset), addr(ok))

	resp, body := get(t, front.URL+"/")
	if resp.StatusCode != 200 || body != "ok" || resets.Load() != 1 || served.Load() != 1 {
		t.Fatalf("GET: %d %q, resets %d served %d; want retried once on the other instance", resp.StatusCode, body, resets.Load(), served.Load())
	}
}

func TestFailureAfterTheRequestWasSentIsNotRetried(t *testing.T) {
	var hits atomic.Int32
	closer := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // reset after the request arrived: not safe to retry
		}
	})
	other := backend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(100) })
	_, front := setup(t, Options{}, addr(closer), addr(other))
	resp, err := http.Post(front.URL+"/", "text/plain", strings.NewReader("once"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	if hits.Load() != 1 {
		t.Fatalf("backends saw %d (1 = first only), want exactly one delivery", hits.Load())
	}
}

func TestUpstreamTimeoutAnswers504(t *testing.T) {
	release := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cfg := testProxyConfig()
	cfg.ResponseHeaderTimeout = 100 * time.Millisecond
	_, front := setup(t, Options{Proxy: cfg}, addr(slow))
	resp, _ := get(t, front.URL+"/")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status = %d, want 504", resp.StatusCode)
	}
}

func TestForwardedHeadersCannotBeSpoofedOrRemovedByTheClient(t *testing.T) {
	echo := backend(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"xff": r.Header.Values("X-Forwarded-For"), "proto": r.Header.Get("X-Forwarded-Proto"),
			"xfh": r.Header.Get("X-Forwarded-Host"), "fwd": r.Header.Get("Forwarded"), "host": r.Host})
	})
	type seen struct {
		XFF   []string `json:"xff"`
		Proto string   `json:"proto"`
		XFH   string   `json:"xfh"`
		Fwd   string   `json:"fwd"`
		Host  string   `json:"host"`
	}
	do := func(t *testing.T, front string, hdr map[string]string) seen {
		req, _ := http.NewRequest("GET", front+"/", nil)
		req.Host = "shop.example.com"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s seen
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("untrusted client", func(t *testing.T) {
		_, front := setup(t, Options{}, addr(echo))
		s := do(t, front.URL, map[string]string{
			"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "Forwarded": "for=6.6.6.6",
			"Connection": "X-Forwarded-For, X-Forwarded-Proto",
		})
		if fmt.Sprint(s.XFF) != "[127.0.0.1]" {
			t.Errorf("X-Forwarded-For = %v, want [127.0.0.1]", s.XFF)
		}
		if s.Proto != "http" || s.XFH != "shop.example.com" || s.Fwd != "" {
			t.Errorf("proto %q host %q forwarded %q, want http, shop.example.com, none", s.Proto, s.XFH, s.Fwd)
		}
		if s.Host != "shop.example.com" {
			t.Errorf("Host = %q, want the client's Host passed through", s.Host)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		cfg := testProxyConfig()
		cfg.TrustedProxies, _ = config.ParseCIDRs([]string{"127.0.0.0/8"})
		_, front := setup(t, Options{Proxy: cfg}, addr(echo))
		s := do(t, front.URL, map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
		if fmt.Sprint(s.XFF) != "[203.0.113.9, 127.0.0.1]" {
			t.Errorf("X-Forwarded-For = %v, want [203.0.113.9, 127.0.0.1]", s.XFF)
		}
		if s.Proto != "https" {
			t.Errorf("X-Forwarded-Proto = %q, want https kept from the trusted proxy", s.Proto)
		}
	})
}

func TestRequestsAreRoutedAndForwardedByTheSameNormalisedPath(t *testing.T) {
	var got atomic.Value
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { got.Store(r.URL.RequestURI()) })
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		t.Fatal(err)
	}
	g.SetRoutes([]config.Route{
		{PathPrefix: "/public", Service: "public"},
		{PathPrefix: "/api", Service: "api", StripPrefix: true},
	})
	g.SetHealthy("public", []discovery.Instance{{ID: "p", Address: addr(be)}}, false)
	g.SetHealthy("api", []discovery.Instance{{ID: "a", Address: addr(be)}}, false)
	front := httptest.NewServer(g)
	defer front.Close()
	cases := []struct{ path, status, want string }{
		{"/public/a?q=1", "200", "/public/a?q=1"},
		{"/api/users?id=7", "200", "/users?id=7"},
		{"/api", "200", "/"},
		{"/public/../admin", "404", ""},
		{"/public/%2e%2e/admin", "404", ""},
		{"//public//x", "200", "/public/x"},
	}
	for _, c := range cases {
		got.Store("")
		conn, err := net.Dial("tcp", addr(front))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c.path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if fmt.Sprint(resp.StatusCode) != c.status || got.Load().(string) != c.want {
			t.Errorf("%s: status %d, backend saw %q; want %s, %q", c.path, resp.StatusCode, got.Load(), c.status, c.want)
		}
	}
}

func TestStreamedResponsesAreNotBuffered(t *testing.T) {
	release := make(chan struct{})
	sse := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	_, front := setup(t, Options{}, addr(sse))
	resp, err := http.Get(front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v: the event was held back", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest of stream %q lacks the second event", rest)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	ws := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	_, front := setup(t, Options{}, addr(ws))
	conn, err := net.Dial("tcp", addr(front))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	fmt.Fprint(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("read %q, %v; want echo over the upgraded connection", line, err)
	}
}

func TestClientGoingAwayMidResponseDoesNotPanic(t *testing.T) {
	sent := make(chan struct{})
	stop := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
		w.(http.Flusher).Flush()
		close(sent)
		for {
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			default:
			}
			if _, err := w.Write(bytes.Repeat([]byte("y"), 32<<10)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	defer close(stop)
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		t.Fatal(err)
	}
	g.SetRoutes([]config.Route{{PathPrefix: "/", Service: "web"}})
	g.SetHealthy("web", []discovery.Instance{{ID: "1", Address: addr(be)}}, false)
	var logs testenv.SyncBuffer
	front := httptest.NewUnstartedServer(g)
	front.Config.ErrorLog = log.New(&logs, "", 0)
	front.Start()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	buf := make([]byte, 512)
	io.ReadFull(resp.Body, buf)
	cancel()
	resp.Body.Close()
	front.Close() // waits for the handler to return
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("server logged a panic:\n%s", logs.String())
	}
}
