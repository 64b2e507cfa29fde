package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/health"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// chromium returns the path of a Chromium on PATH, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (chromium, chromium-browser or google-chrome): skipping the browser test; " +
		"`make test` installs Debian's chromium with apt-get (scripts/ensure-chromium.sh) where apt is available")
	return ""
}

// runChromium loads url in headless Chromium, letting the page run for
// five seconds of virtual time, and returns what it printed.
func runChromium(t *testing.T, bin, url string, mode ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp("", "switchyard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: a killed browser's helpers may still be writing here.
	defer os.RemoveAll(profile)
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--virtual-time-budget=5000",
	}, mode...)
	// CommandContext kills the browser by its PID when ctx ends; WaitDelay
	// bounds the wait for helpers that inherited its output.
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", bin, strings.Join(mode, " "), err, testenv.Tail(stderr.String(), 2000))
	}
	return stdout.String()
}

func TestDashboardInBrowser(t *testing.T) {
	bin := chromium(t)

	// The page is served with the demo instances; every later call (the
	// script's refresh) adds an instance with a hostile reason, which can
	// therefore only reach the DOM through the script.
	var calls atomic.Int32
	opt := demoOptions(func() []health.ServiceStatus {
		s := demoServices(time.Now())
		if calls.Add(1) > 1 {
			late := instance("web-backend-4", "backend-4:9000", false, hostileReason)
			s[1].Instances = append(s[1].Instances, late)
		}
		return s
	})
	var apiCalls atomic.Int32
	h := New(opt)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/services" {
			apiCalls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	dom := runChromium(t, bin, srv.URL+"/", "--dump-dom")
	if apiCalls.Load() == 0 {
		t.Fatalf("the page never fetched /api/v1/services; DOM:\n%s", testenv.Tail(dom, 4000))
	}
	if !regexp.MustCompile(`<table class="grid" id="instances" data-refreshed="1"`).MatchString(dom) {
		t.Errorf("the instances table was not marked refreshed by the script; DOM:\n%s", testenv.Tail(dom, 4000))
	}
	for _, id := range []string{"api-1", "web-backend-1", "web-backend-2", "web-backend-3", "web-backend-4"} {
		if !strings.Contains(dom, `data-id="`+id+`"`) {
			t.Errorf("DOM has no row for %s", id)
		}
	}
	// The added row is complete: verdict, address and the escaped reason.
	row := regexp.MustCompile(`(?s)<tr [^>]*data-id="web-backend-4"[^>]*>.*?</tr>`).FindString(dom)
	for _, want := range []string{`<span class="pill out">out</span>`, `backend-4:9000`, `&lt;script&gt;alert("pwned")&lt;/script&gt;`} {
		if !strings.Contains(row, want) {
			t.Errorf("row web-backend-4 lacks %s: %s", want, row)
		}
	}
	// An injected element would serialize with bare quotes; text and
	// attributes never do.
	if strings.Contains(dom, hostileReason) {
		t.Error("the hostile reason became markup in the browser")
	}
	if !strings.Contains(dom, `<b id="n-instances">5</b>`) {
		t.Error("the header count was not updated to 5 instances")
	}

	// When the API stops answering, the page keeps its rows and says so.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/services" {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer down.Close()
	dom = runChromium(t, bin, down.URL+"/", "--dump-dom")
	for _, want := range []string{`<main id="main" class="stale">`, `data-refreshed="0"`, `data-id="web-backend-1"`, `>disconnected</span>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("with the API down, the DOM lacks %s", want)
		}
	}

	// SWITCHYARD_DASHBOARD_SCREENSHOT=/tmp/dash.png also saves pictures of
	// the demo page, light and dark (/tmp/dash-dark.png), for a person to
	// look at.
	if path := os.Getenv("SWITCHYARD_DASHBOARD_SCREENSHOT"); path != "" {
		demo := httptest.NewServer(New(demoOptions(func() []health.ServiceStatus { return demoServices(time.Now()) })))
		defer demo.Close()
		dark := strings.TrimSuffix(path, ".png") + "-dark.png"
		for p, extra := range map[string][]string{path: nil, dark: {"--force-dark-mode"}} {
			runChromium(t, bin, demo.URL+"/", append([]string{"--screenshot=" + p, "--window-size=1280,800", "--hide-scrollbars"}, extra...)...)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("screenshot: %v", err)
			}
			t.Logf("screenshot saved to %s", p)
		}
	}
}
