package faults

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-gw/switchyard/app"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// gateway is a running app with its logs captured.
type gateway struct {
	app    *app.App
	url    string // proxy base URL
	admin  string // admin base URL
	logs   *testenv.SyncBuffer
	client *http.Client
}

// noLeaks snapshots goroutines and file descriptors; the returned check runs
// at cleanup, after everything the test started has stopped.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	fds := countFDs(t)
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
		// Descriptors close asynchronously on some paths; poll briefly.
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := countFDs(t)
			if n <= fds {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("sockets: %d before, %d after", fds, n)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// countFDs counts the open sockets: what a leaked connection or listener
// holds. Other descriptors are left out, as the runtime opens some of its
// own at a time of its choosing (the cgroup CPU limit files, read about a
// second after start).
func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// start runs the gateway over backends (addresses) with cfg adjusted by
// mutate, waits until ready, and stops it at cleanup. Call noLeaks first.
func start(t *testing.T, mutate func(*config.Config), backends ...string) *gateway {
	t.Helper()
	c := config.Default()
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Health.Interval, c.Health.Jitter, c.Health.Timeout = 100*time.Millisecond, 0, 500*time.Millisecond
	c.ShutdownTimeout = 2 * time.Second
	c.Backends = backends
	if mutate != nil {
		mutate(&c)
	}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(&c, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	g := &gateway{app: a, url: "http://" + a.ProxyAddr(), admin: "http://" + a.AdminAddr(), logs: logs, client: client}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
		if strings.Contains(logs.String(), "panic") {
			t.Errorf("gateway logged a panic:\n%s", logs.String())
		}
		if t.Failed() {
			t.Logf("gateway logs:\n%s", testenv.Tail(logs.String(), 3000))
		}
	})
	g.waitReady(t)
	return g
}

func (g *gateway) waitReady(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "gateway ready", func() bool {
		resp, err := g.client.Get(g.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// get sends a GET through the gateway and returns status and body.
func (g *gateway) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := g.client.Get(g.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stillServes asserts a normal request gets the answer of a healthy backend.
func (g *gateway) stillServes(t *testing.T, path, want string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "a normal request to succeed", func() bool {
		code, body := g.get(t, path)
		return code == 200 && strings.Contains(body, want)
	})
}

func (g *gateway) proxyAddr() string { return strings.TrimPrefix(g.url, "http://") }

// okBackend answers "ok <name>" on every path, 200 on /health.
func okBackend(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// tcpServer accepts on a loopback listener and runs serve on its own
// goroutine for every connection, closing the connection when serve
// returns. It is closed at the test's cleanup, or earlier by Close.
type tcpServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startTCPServer(t *testing.T, serve func(net.Conn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { s.mu.Lock(); delete(s.conns, c); s.mu.Unlock(); c.Close() }()
				serve(c)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for every
// serve to return. It may be called more than once.
func (s *tcpServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// rawBackend is a TCP backend scripted at the byte level. It answers
// /health probes itself (200), so the instance stays in rotation, and hands
// every other request's connection to handle, which owns it from then on.
type rawBackend struct {
	*tcpServer
	requests atomic.Int32 // non-probe requests seen
	probes   atomic.Int32
}

func newRawBackend(t *testing.T, handle func(c net.Conn, req *http.Request)) *rawBackend {
	t.Helper()
	b := &rawBackend{}
	b.tcpServer = startTCPServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/health" {
				b.probes.Add(1)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			b.requests.Add(1)
			handle(c, req)
			return
		}
	})
	return b
}

// fullFaults reports whether the long form of the suite was asked for
// (make test-faults).
func fullFaults() bool { return os.Getenv("SWITCHYARD_FAULTS") == "full" }
