package gateway

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

type ejectRecorder struct {
	mu     sync.Mutex
	calls  []string
	refuse bool
}

func (e *ejectRecorder) Eject(service, id, reason string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, id+": "+reason)
	return !e.refuse
}

func (e *ejectRecorder) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func TestPassiveHealthReportsAnInstanceAfterConsecutiveFailures(t *testing.T) {
	var status atomic.Int32
	status.Store(502)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	g, front := setup(t, Options{EjectAfter: 3}, addr(be))
	ej := &ejectRecorder{}
	g.SetEjector(ej)

	hit := func(n int) {
		for range n {
			resp, _ := get(t, front.URL+"/")
			if resp.StatusCode != int(status.Load()) {
				t.Fatalf("status %d, want the backend's %d passed through", resp.StatusCode, status.Load())
			}
		}
	}
	hit(2)
	status.Store(200)
	hit(1) // a success resets the count
	status.Store(404)
	hit(5) // 4xx never counts
	status.Store(503)
	hit(2)
	if got := ej.get(); len(got) != 0 {
		t.Fatalf("ejected before 3 consecutive failures: %v", got)
	}
	hit(1)
	got := ej.get()
	if len(got) != 1 || !strings.Contains(got[0], "web-1: 3 consecutive failed requests, last: status 503") {
		t.Fatalf("ejections = %q", got)
	}
}

func TestPassiveHealthCountsConnectionErrors(t *testing.T) {
	cfg := testProxyConfig()
	cfg.Retries = 0
	g, front := setup(t, Options{Proxy: cfg, EjectAfter: 2}, testenv.DeadAddr(t))
	ej := &ejectRecorder{}
	g.SetEjector(ej)
	for range 2 {
		if resp, _ := get(t, front.URL+"/"); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", resp.StatusCode)
		}
	}
	if got := ej.get(); len(got) != 1 || !strings.Contains(got[0], "dial: ") {
		t.Fatalf("ejections = %q, want one naming the dial error", got)
	}
}
