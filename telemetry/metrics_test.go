package telemetry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/health"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestMetricsTellTheStoryWithBoundedLabels(t *testing.T) {
	b := newBackend(t)
	r := newRig(t, rigOpts{noTracing: true, instances: []discovery.Instance{{ID: "dead", Address: testenv.DeadAddr(t)}, {ID: "live", Address: b.addr()}}})
	for range 3 {
		r.do(t, "GET", "/api/users/12345", "x", nil)
	}
	r.do(t, "PURGE", "/api/cache", "y", nil)
	r.do(t, "GET", "/secret/raw/path", "z", nil)

	m := scrape(t, r.tel)
	wantSeries(t, m, "switchyard_requests_total", `route="/api"`, `service="web"`, `method="GET"`, `status_class="2xx"`)
	wantSeries(t, m, "switchyard_requests_total", `route="/api"`, `method="_OTHER"`, `status_class="2xx"`)
	wantSeries(t, m, "switchyard_requests_total", `route=""`, `service=""`, `status_class="4xx"`)
	wantSeries(t, m, "switchyard_request_duration_seconds_bucket", `route="/api"`, `service="web"`, `le="0.005"`)
	wantSeries(t, m, "switchyard_upstream_attempts_total", `service="web"`, `instance="dead"`, `outcome="dial_error"`)
	wantSeries(t, m, "switchyard_upstream_attempts_total", `service="web"`, `instance="live"`, `outcome="ok"`)
	wantSeries(t, m, "switchyard_upstream_retries_total", `service="web"`)
	for _, leak := range []string{"users/12345", "secret", "PURGE"} {
		if strings.Contains(m, leak) {
			t.Errorf("client input %q leaked into a label:\n%s", leak, grepLines(m, "switchyard_"))
		}
	}
}

func TestHealthAndDiscoveryMetrics(t *testing.T) {
	r := newRig(t, rigOpts{noTracing: true})
	tel := r.tel
	tel.ProbeHook()("web", "web-1", 3*time.Millisecond, nil)
	tel.ProbeHook()("web", "web-2", time.Second, errors.New("connection refused"))
	tel.TransitionHook()("web", "web-2", false, "probe: 2 consecutive failures")
	err := tel.ObserveHealth(func() []health.ServiceStatus {
		return []health.ServiceStatus{{Name: "web", Healthy: 1, Instances: []health.InstanceStatus{
			{ID: "web-1", Routable: true}, {ID: "web-2", Routable: false},
		}}}
	})
	if err != nil {
		t.Fatal(err)
	}

	static := discovery.NewStatic(discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: []discovery.Instance{{ID: "web-1", Address: "127.0.0.1:1"}}}}})
	src, err := tel.ObserveDiscovery(static)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan discovery.Snapshot, 4)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(s discovery.Snapshot) { got <- s }) }()
	<-got
	static.Set(discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: []discovery.Instance{{ID: "web-2", Address: "127.0.0.1:2"}}}}})
	<-got
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	m := scrape(t, tel)
	wantSeries(t, m, "switchyard_health_probe_duration_seconds_count", `service="web"`, `instance="web-1"`, `result="ok"`)
	wantSeries(t, m, "switchyard_health_probe_duration_seconds_count", `instance="web-2"`, `result="fail"`)
	wantSeries(t, m, "switchyard_health_transitions_total", `instance="web-2"`, `state="unroutable"`)
	wantSeries(t, m, "switchyard_upstream_healthy_instances", `service="web"`)
	wantSeries(t, m, "switchyard_instance_routable", `service="web"`, `instance="web-1"`, "} 1")
	wantSeries(t, m, "switchyard_instance_routable", `instance="web-2"`, "} 0")
	wantSeries(t, m, "switchyard_discovery_updates_total", `provider="static"`, "} 2")
	wantSeries(t, m, "switchyard_discovery_last_success_seconds", `provider="static"`)
	wantSeries(t, m, "switchyard_discovery_errors_total", `provider="static"`, "} 0")
	if logs := r.logs.String(); !strings.Contains(logs, "added=[web/web-2]") || !strings.Contains(logs, "removed=[web/web-1]") {
		t.Errorf("discovery change not logged:\n%s", logs)
	}
}

// failingSource reports an error streak through Status, as a registry
// source does while it keeps its last good snapshot.
type failingSource struct {
	discovery.Static
	since time.Time
}

func (f *failingSource) Status() discovery.Status {
	return discovery.Status{Provider: "consul", LastError: "connection refused", ErrorSince: f.since}
}

func TestDiscoveryErrorStreaksAreCounted(t *testing.T) {
	r := newRig(t, rigOpts{noTracing: true})
	f := &failingSource{since: time.Unix(100, 0)}
	if _, err := r.tel.ObserveDiscovery(f); err != nil {
		t.Fatal(err)
	}
	wantSeries(t, scrape(t, r.tel), "switchyard_discovery_errors_total", `provider="consul"`, "} 1")
	// The same streak is one error, a new one another.
	wantSeries(t, scrape(t, r.tel), "switchyard_discovery_errors_total", `provider="consul"`, "} 1")
	f.since = time.Unix(200, 0)
	wantSeries(t, scrape(t, r.tel), "switchyard_discovery_errors_total", `provider="consul"`, "} 2")
}

func TestNoEndpointMeansNoExporterAndNoNoise(t *testing.T) {
	var logs testenv.SyncBuffer
	tel, err := New(context.Background(), Options{Config: config.Default().Telemetry, Getenv: noEnv, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Tracing() {
		t.Error("tracing is on without an endpoint")
	}
	if h := tel.Hooks(); h.Request == nil || h.Attempt == nil {
		t.Error("metrics hooks missing without an endpoint")
	}
	if tel.MetricsHandler() == nil {
		t.Error("no /metrics handler without an endpoint")
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Errorf("telemetry without an endpoint logged:\n%s", logs.String())
	}
}

func TestDisabledTelemetryLeavesEveryHookNil(t *testing.T) {
	cfg := config.Default().Telemetry
	cfg.Endpoint = "http://127.0.0.1:4317"
	env := map[string]string{"OTEL_SDK_DISABLED": "true"}
	tel, err := New(context.Background(), Options{Config: cfg, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	h := tel.Hooks()
	if h.Request != nil || h.Attempt != nil || tel.ProbeHook() != nil || tel.TransitionHook() != nil || tel.MetricsHandler() != nil || tel.Tracing() {
		t.Errorf("disabled telemetry still hooks in: %+v", h)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCowMapKeepsEveryEntryAndPublishesAHotOne(t *testing.T) {
	var m cowMap[int, int]
	built := 0
	for i := range 20000 {
		if got := m.get(i, func(k int) int { built++; return k * 2 }); got != i*2 {
			t.Fatalf("get(%d) = %d", i, got)
		}
	}
	if built != 20000 {
		t.Errorf("%d values built for 20,000 keys", built)
	}
	// A key still waiting in the dirty map is published after a bounded
	// number of reads under the mutex.
	for range 40001 {
		m.get(19999, func(int) int { t.Fatal("rebuilt an existing value"); return 0 })
	}
	if _, ok := (*m.m.Load())[19999]; !ok {
		t.Error("a hot entry never reached the lock-free map")
	}
	n := 0
	m.each(func(int) { n++ })
	if n != 20000 {
		t.Errorf("each saw %d values, want 20,000", n)
	}
}
