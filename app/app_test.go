package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/admin"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// testConfig is a static config on free ports with one service "web" at "/".
func testConfig(t *testing.T, addrs ...string) *config.Config {
	t.Helper()
	c := config.Default()
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Health.Interval, c.Health.Jitter = 50*time.Millisecond, 0
	c.ShutdownTimeout = 5 * time.Second
	c.Backends = addrs
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

// startApp runs the gateway until the test ends, logging to the test's
// output.
func startApp(t *testing.T, cfg *config.Config) *App {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

func body(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, a *App) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "/readyz 200", func() bool {
		code, _ := body(t, "http://"+a.AdminAddr()+"/readyz")
		return code == 200
	})
}

func backend(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// The acceptance test this design started from: the second backend answers
// "/" but fails its health check, so the gateway never sends traffic to it.
func TestNoRequestReachesAnInstanceWhoseProbeFails(t *testing.T) {
	one := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "1") })
	two := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "2")
	})
	a := startApp(t, testConfig(t, one, two))
	waitReady(t, a)
	for i := range 2 {
		if code, got := body(t, "http://"+a.ProxyAddr()+"/"); code != 200 || got != "1" {
			t.Fatalf("request %d: %d %q, want 200 \"1\"", i+1, code, got)
		}
	}
}

func TestReadyzWaitsForTheFirstProbeRound(t *testing.T) {
	release := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	cfg := testConfig(t, slow)
	cfg.Health.Timeout = time.Minute
	a := startApp(t, cfg)
	if code, _ := body(t, "http://"+a.AdminAddr()+"/readyz"); code != 503 {
		t.Fatalf("/readyz = %d before the first probe finished, want 503", code)
	}
	if code, _ := body(t, "http://"+a.AdminAddr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d, want 200 while alive", code)
	}
	close(release)
	waitReady(t, a)
}

func TestAdminShowsWhyAnInstanceIsOut(t *testing.T) {
	up := backend(t, func(w http.ResponseWriter, r *http.Request) {})
	down := backend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	a := startApp(t, testConfig(t, up, down))
	waitReady(t, a)
	var got admin.ServicesResponse
	testenv.WaitFor(t, 5*time.Second, "down instance explained", func() bool {
		resp, err := http.Get("http://" + a.AdminAddr() + "/api/v1/services")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got = admin.ServicesResponse{}
		json.NewDecoder(resp.Body).Decode(&got)
		if len(got.Services) != 1 || len(got.Services[0].Instances) != 2 {
			return false
		}
		for _, in := range got.Services[0].Instances {
			if in.ID == down && in.Probe.LastError != "" {
				return true
			}
		}
		return false
	})
	for _, in := range got.Services[0].Instances {
		switch in.ID {
		case down:
			if in.Routable || !strings.Contains(in.Reason, "status 500") {
				t.Fatalf("down instance: routable=%v reason=%q, want out because of status 500", in.Routable, in.Reason)
			}
		case up:
			if !in.Routable {
				t.Fatalf("up instance not routable: %q", in.Reason)
			}
		}
	}
	if got.Discovery.Provider != "static" || got.Discovery.LastSuccess == nil {
		t.Fatalf("discovery view = %+v", got.Discovery)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	a, err := New(testConfig(t, slow), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(ctx) }()
	waitReady(t, a)

	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() {
		code, b := body(t, "http://"+a.ProxyAddr()+"/slow")
		res <- result{code, b}
	}()
	<-entered
	cancel() // SIGTERM
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if r := <-res; r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request got %d %q, want 200 done", r.code, r.body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestPortConflictFailsBeforeServing(t *testing.T) {
	busy := backend(t, func(http.ResponseWriter, *http.Request) {})
	cfg := testConfig(t, busy)
	cfg.Listen = busy
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("New with a busy port: %v, want a listen error", err)
	}
}
