package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// workerBackend serves one request at a time, each taking service: an
// instance with a fixed capacity, whose queue grows when it is sent more
// than it can serve.
type workerBackend struct {
	srv  string
	hits atomic.Int64
}

func newWorkerBackend(t *testing.T, service time.Duration) *workerBackend {
	b := &workerBackend{}
	var worker sync.Mutex
	b.srv = addr(backend(t, func(w http.ResponseWriter, r *http.Request) {
		worker.Lock()
		time.Sleep(service) // the work itself, not synchronisation
		worker.Unlock()
		b.hits.Add(1)
		io.WriteString(w, "ok")
	}))
	return b
}

// loadResult is what one policy's run measured.
type loadResult struct {
	slowShare float64
	p99       time.Duration
}

// runLoad sends n requests from conc concurrent clients through a gateway
// with the given policy over backends, and checks that nothing stays
// counted in flight afterwards.
func runLoad(t *testing.T, policy string, backends []*workerBackend, n, conc int) loadResult {
	t.Helper()
	g, err := New(Options{Proxy: testProxyConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.CloseIdleConnections)
	var ins []discovery.Instance
	for i, b := range backends {
		b.hits.Store(0)
		ins = append(ins, discovery.Instance{ID: fmt.Sprintf("web-%d", i), Address: b.srv})
	}
	g.SetServices(discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: ins}}},
		func(discovery.Service) Balancing { return Balancing{Policy: policy} })
	g.SetRoutes(defaultRoute())
	g.SetHealthy("web", ins, false)
	front := httptest.NewServer(g)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	defer client.CloseIdleConnections()

	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				start := time.Now()
				resp, err := client.Get(front.URL + "/x")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	for _, u := range g.services["web"].pool.Load().upstreams {
		if f := u.InFlight(); f != 0 {
			t.Errorf("%s: %s still counts %d in flight after every response ended", policy, u.ID, f)
		}
	}
	slices.Sort(lat)
	return loadResult{
		slowShare: float64(backends[0].hits.Load()) / float64(n),
		p99:       lat[n*99/100],
	}
}

func TestLeastRequestSparesASlowInstanceAndCutsTheTail(t *testing.T) {
	// Four single-worker instances; the first takes 10x longer per request.
	backends := []*workerBackend{newWorkerBackend(t, 50*time.Millisecond)}
	for range 3 {
		backends = append(backends, newWorkerBackend(t, 5*time.Millisecond))
	}
	const n, conc = 200, 8
	rr := runLoad(t, config.PolicyRoundRobin, backends, n, conc)
	lr := runLoad(t, config.PolicyLeastRequest, backends, n, conc)
	t.Logf("slow instance's share: round_robin %.3f, least_request %.3f; p99: round_robin %s, least_request %s",
		rr.slowShare, lr.slowShare, rr.p99, lr.p99)
	if rr.slowShare < 0.24 || rr.slowShare > 0.26 {
		t.Errorf("round_robin sent the slow instance %.3f of requests, want its 0.25", rr.slowShare)
	}
	if lr.slowShare > rr.slowShare/2 {
		t.Errorf("least_request sent the slow instance %.3f of requests, want far below round_robin's %.3f", lr.slowShare, rr.slowShare)
	}
	if lr.p99 >= rr.p99 {
		t.Errorf("p99 with least_request %s, want below round_robin's %s", lr.p99, rr.p99)
	}
}
