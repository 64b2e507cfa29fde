package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/admin"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestBackendThatNeverAnswersGets504AndItsConnectionIsClosed(t *testing.T) {
	noLeaks(t)
	closed := make(chan struct{}, 1)
	hung := newRawBackend(t, func(c net.Conn, req *http.Request) {
		if req.URL.Path == "/ok" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			return
		}
		io.Copy(io.Discard, c) // never answer; returns when the gateway closes
		closed <- struct{}{}
	})
	g := start(t, func(c *config.Config) { c.Proxy.ResponseHeaderTimeout = 300 * time.Millisecond }, hung.addr())
	code, body := g.get(t, "/")
	if code != http.StatusGatewayTimeout {
		t.Fatalf("status %d %q, want 504", code, body)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the gateway kept the connection to the hung backend open")
	}
	if n := hung.requests.Load(); n != 1 {
		t.Fatalf("hung backend saw %d requests, want 1 (a timeout is not retried)", n)
	}
	g.stillServes(t, "/ok", "ok")
}

func TestTruncatedResponseReachesTheClientAsAnAbruptClose(t *testing.T) {
	noLeaks(t)
	trunc := newRawBackend(t, func(c net.Conn, req *http.Request) {
		if req.URL.Path != "/file" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\n")
		c.Write([]byte(strings.Repeat("x", 40000)))
	})
	g := start(t, nil, trunc.addr())

	conn, err := net.Dial("tcp", g.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != 100000 {
		t.Fatalf("status %d content-length %d, want the backend's 200 and 100000", resp.StatusCode, resp.ContentLength)
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("body ended cleanly after %d bytes; a truncated response must end abruptly", len(got))
	}
	if len(got) != 40000 {
		t.Fatalf("client got %d bytes, want exactly the 40000 sent", len(got))
	}
	if n := trunc.requests.Load(); n != 1 {
		t.Fatalf("backend saw %d requests, want 1: no retry after bytes went out", n)
	}
	g.stillServes(t, "/", "ok")
}

func TestResetAfterTheRequestWasSentRetriesGETButNeverPOST(t *testing.T) {
	noLeaks(t)
	var posts atomic.Int32
	reset := newRawBackend(t, func(c net.Conn, req *http.Request) {
		if req.Method == http.MethodPost {
			posts.Add(1)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	ok := okBackend(t, "b")
	g := start(t, nil, reset.addr(), hostport(ok))

	for i := range 4 { // round-robin: half of the first attempts hit the reset backend
		if code, body := g.get(t, "/"); code != 200 || body != "ok b" {
			t.Fatalf("GET %d: %d %q, want a retry to the healthy instance", i, code, body)
		}
	}
	var got502 int
	for range 4 {
		resp, err := g.client.Post(g.url+"/", "text/plain", strings.NewReader("pay once"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadGateway {
			got502++
		}
	}
	if got502 == 0 || int(posts.Load()) != got502 {
		t.Fatalf("POSTs: %d answered 502, reset backend saw %d; want each reset POST seen once and answered 502", got502, posts.Load())
	}
	g.stillServes(t, "/", "ok b")
}

func TestInstanceFailingRequestsIsEjectedAndShownInTheAdminAPI(t *testing.T) {
	noLeaks(t)
	bad := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return // probes pass: only real requests fail
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	good1, good2 := okBackend(t, "g1"), okBackend(t, "g2")
	g := start(t, func(c *config.Config) {
		c.Health.Passive.ConsecutiveFailures = 3
		c.Health.Passive.BaseEjectionTime = time.Minute
	}, bad, hostport(good1), hostport(good2))

	// Round-robin over three: 9 requests give the bad one 3 in a row.
	for range 9 {
		g.get(t, "/")
	}
	var view admin.ServicesResponse
	resp, err := g.client.Get(g.admin + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	var found bool
	for _, in := range view.Services[0].Instances {
		if in.ID == bad {
			found = true
			if in.Routable || in.Ejected == nil || !strings.Contains(in.Reason, "3 consecutive failed requests, last: status 502") {
				t.Fatalf("bad instance: routable=%v ejected=%v reason=%q", in.Routable, in.Ejected, in.Reason)
			}
		}
	}
	if !found {
		t.Fatal("bad instance missing from the admin API")
	}
	for range 6 {
		if code, _ := g.get(t, "/"); code != 200 {
			t.Fatalf("status %d after ejection, want only healthy instances", code)
		}
	}
}

func TestInFlightRequestCompletesWhenItsInstanceLeavesRotation(t *testing.T) {
	noLeaks(t)
	var healthy atomic.Bool
	healthy.Store(true)
	entered, release := make(chan struct{}), make(chan struct{})
	slow := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if !healthy.Load() {
				w.WriteHeader(500)
			}
			return
		}
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	g := start(t, func(c *config.Config) { c.Health.UnhealthyThreshold = 1 }, slow)
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() { c, b := g.get(t, "/slow"); res <- result{c, b} }()
	<-entered
	healthy.Store(false)
	testenv.WaitFor(t, 5*time.Second, "instance out of rotation", func() bool { return g.app.Gateway().Healthy("default") == 0 })
	close(release)
	if r := <-res; r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: %d %q, want 200 done", r.code, r.body)
	}
	if code, _ := g.get(t, "/"); code != http.StatusServiceUnavailable {
		t.Fatalf("new request: %d, want 503 while the only instance is out", code)
	}
	healthy.Store(true)
	g.stillServes(t, "/", "done")
}

func TestAllInstancesDownAnswers503FastWithoutARetryStorm(t *testing.T) {
	noLeaks(t)
	// Instances pass probes but reset every real request: the worst case for
	// retries, since each looks retryable.
	var backends []*rawBackend
	var addrs []string
	for range 3 {
		b := newRawBackend(t, func(c net.Conn, _ *http.Request) { c.(*net.TCPConn).SetLinger(0); c.Close() })
		backends = append(backends, b)
		addrs = append(addrs, b.addr())
	}
	const requests, retries = 20, 2
	g := start(t, func(c *config.Config) { c.Proxy.Retries = retries; c.Health.Passive.ConsecutiveFailures = 0 }, addrs...)
	for range requests {
		if code, _ := g.get(t, "/"); code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", code)
		}
	}
	var seen int32
	for _, b := range backends {
		seen += b.requests.Load()
	}
	if seen > requests*(1+retries) {
		t.Fatalf("backends saw %d requests for %d client requests: more than 1+%d attempts each", seen, requests, retries)
	}

	// Now every instance is really down: probes fail and 503 comes at once.
	for _, b := range backends {
		b.Close()
	}
	testenv.WaitFor(t, 5*time.Second, "all out of rotation", func() bool { return g.app.Gateway().Healthy("default") == 0 })
	start503 := time.Now()
	code, body := g.get(t, "/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"default"`) {
		t.Fatalf("status %d %q, want 503 naming the service", code, body)
	}
	t.Logf("503 with every instance down took %s", time.Since(start503))
}

func TestWebSocketSessionSurvivesAndBothClosesReleaseEverything(t *testing.T) {
	noLeaks(t)
	ws := newRawBackend(t, func(c net.Conn, req *http.Request) {
		if req.Header.Get("Upgrade") == "" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "close\n" {
				return // backend closes
			}
			io.WriteString(c, "echo "+line)
		}
	})
	g := start(t, nil, ws.addr())
	open := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", g.proxyAddr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		return conn, br
	}
	// Client closes.
	conn, br := open()
	for i := range 3 { // across several probe intervals
		fmt.Fprintf(conn, "m%d\n", i)
		if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("echo m%d\n", i) {
			t.Fatalf("message %d: %q %v", i, line, err)
		}
		// Let probes run while the session is open.
		before := ws.probes.Load()
		testenv.WaitFor(t, 5*time.Second, "two more probes", func() bool { return ws.probes.Load() >= before+2 })
	}
	conn.Close()
	// Backend closes.
	conn, br = open()
	fmt.Fprint(conn, "close\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the backend closed, client read err = %v, want EOF", err)
	}
	conn.Close()
	g.stillServes(t, "/", "ok")
}

// newHTTPBackend serves h and returns its address.
func newHTTPBackend(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return hostport(s)
}

func TestFlappingProbeChangesStateAtMostOncePerRiseAndFallIntervals(t *testing.T) {
	noLeaks(t)
	var probes atomic.Int32
	flap := newHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if probes.Add(1)%2 == 0 { // pass, fail, pass, fail, ...
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		io.WriteString(w, "flap")
	})
	steady := okBackend(t, "steady")
	const rise, fall = 2, 2
	g := start(t, func(c *config.Config) {
		c.Health.Interval = 20 * time.Millisecond
		c.Health.HealthyThreshold, c.Health.UnhealthyThreshold = rise, fall
	}, flap, hostport(steady))
	testenv.WaitFor(t, 10*time.Second, "40 probes of the flapping instance", func() bool { return probes.Load() >= 40 })
	n := int(probes.Load())
	transitions := transitionsOf(t, g, flap)
	if transitions < 1 {
		t.Fatalf("no transition counted for %s: the first pass must be one", flap)
	}
	if limit := n/(rise+fall) + 1; transitions > limit {
		t.Fatalf("%d transitions in %d probes, want at most %d", transitions, n, limit)
	}
	t.Logf("%d probes, %d transitions", n, transitions)
	g.stillServes(t, "/", "ok steady")
}

// transitionsOf sums switchyard_health_transitions_total for one instance
// from the gateway's /metrics.
func transitionsOf(t *testing.T, g *gateway, instance string) int {
	t.Helper()
	resp, err := g.client.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "switchyard_health_transitions_total{") && strings.Contains(line, `instance="`+instance+`"`) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += int(v)
		}
	}
	return total
}
