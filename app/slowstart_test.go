package app

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// An instance ejected by passive health gets no traffic while ejected and
// comes back in slow start; the one that stayed keeps its full weight.
func TestAnEjectedInstanceReturnsInSlowStart(t *testing.T) {
	var failing atomic.Bool
	steady := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "steady") })
	flaky := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && failing.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "flaky")
	})
	cfg := testConfig(t, steady, flaky)
	cfg.Health.SlowStart = time.Minute
	cfg.Health.Passive.ConsecutiveFailures = 2
	cfg.Health.Passive.BaseEjectionTime = 300 * time.Millisecond
	cfg.Health.Passive.MaxEjectionTime = time.Second
	a := startApp(t, cfg)
	waitReady(t, a)
	testenv.WaitFor(t, 5*time.Second, "both at full weight", func() bool {
		w := weightsIn(a, "default") // sorted by id: either may come first
		return w == steady+"=1/1 "+flaky+"=1/1" || w == flaky+"=1/1 "+steady+"=1/1"
	})

	failing.Store(true)
	testenv.WaitFor(t, 5*time.Second, "the flaky instance ejected", func() bool {
		body(t, "http://"+a.ProxyAddr()+"/")
		return !strings.Contains(weightsIn(a, "default"), flaky)
	})
	failing.Store(false)
	testenv.WaitFor(t, 5*time.Second, "the flaky instance back", func() bool {
		return strings.Contains(weightsIn(a, "default"), flaky)
	})
	for _, s := range a.Gateway().Balance() {
		for _, in := range s.Instances {
			switch {
			case in.ID == steady && in.EffectiveWeight != 1:
				t.Errorf("steady instance at effective weight %v, want 1", in.EffectiveWeight)
			case in.ID == flaky && (in.EffectiveWeight >= 0.5 || in.EffectiveWeight < 0.1):
				t.Errorf("returned instance at effective weight %v, want the start of a 1m ramp (0.1 and a little more)", in.EffectiveWeight)
			}
		}
	}
}
