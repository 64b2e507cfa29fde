package health

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// countingServer is a net/http server that counts the connections it
// accepted and the probes it answered.
type countingServer struct {
	*httptest.Server
	conns, probes atomic.Int32
}

func newCountingServer(t *testing.T, keepAlive bool) *countingServer {
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.probes.Add(1)
		w.Write([]byte("ok"))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Config.SetKeepAlivesEnabled(keepAlive)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) addr() string { return strings.TrimPrefix(s.URL, "http://") }

func TestProbesOfAKeepAliveInstanceShareOneConnection(t *testing.T) {
	s := newCountingServer(t, true)
	c, rec := start(t, Options{Defaults: healthCfg(5*time.Millisecond, 1, 1)})
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: s.addr()}))
	testenv.WaitFor(t, 5*time.Second, "30 probes", func() bool { return s.probes.Load() >= 30 })
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d probes took %d connections, want 1", s.probes.Load(), n)
	}
	if got := rec.healthy("web"); len(got) != 1 {
		t.Errorf("healthy = %v, want [a]", got)
	}
}

func TestAnInstanceThatClosesEveryConnectionIsStillProbed(t *testing.T) {
	s := newCountingServer(t, false) // answers with Connection: close
	c, rec := start(t, Options{Defaults: healthCfg(5*time.Millisecond, 1, 1)})
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: s.addr()}))
	testenv.WaitFor(t, 5*time.Second, "10 probes", func() bool { return s.probes.Load() >= 10 })
	if p, n := s.probes.Load(), s.conns.Load(); n < p {
		t.Errorf("%d probes over %d connections: a closed connection was reused", p, n)
	}
	if st := c.Services()[0].Instances[0]; st.Probe.Status != ProbeUp || st.Probe.ConsecutiveFail != 0 {
		t.Errorf("probe state %+v, want passing without failures", st.Probe)
	}
	if got := rec.healthy("web"); len(got) != 1 {
		t.Errorf("healthy = %v, want [a]", got)
	}
}

// rawServer answers every request on a connection with reply, written as
// is, and counts connections.
func rawServer(t *testing.T, reply string) (addr string, conns *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int32{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), conns
}

func TestAConnectionWithBytesNobodyAskedForIsNotReused(t *testing.T) {
	// A response followed by the start of another one nobody asked for.
	addr, conns := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 Sneaky\r\n")
	c, _ := start(t, Options{Defaults: healthCfg(5*time.Millisecond, 1, 1)})
	c.Update(snapshot("web", discovery.Instance{ID: "a", Address: addr}))
	testenv.WaitFor(t, 5*time.Second, "five connections, one per probe", func() bool { return conns.Load() >= 5 })
	st := c.Services()[0].Instances[0]
	if st.Probe.Status != ProbeUp || st.Probe.ConsecutiveFail != 0 {
		t.Errorf("probe state %+v: the unsolicited bytes were read as an answer", st.Probe)
	}
}

func TestProbeRequestRefusesAPathThatWouldSplitTheRequest(t *testing.T) {
	if req := probeRequest("127.0.0.1:80", "/health\r\nX-Injected: 1"); req != nil {
		t.Errorf("request %q built from a path with CRLF", req)
	}
	got := string(probeRequest("127.0.0.1:80", "/ready?full=1"))
	if !strings.HasPrefix(got, "GET /ready?full=1 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("request = %q", got)
	}
}
