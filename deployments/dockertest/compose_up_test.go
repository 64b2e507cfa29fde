package dockertest_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/dockertest"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// Bounds documented in docs/docker.md. The gateway probes every 2 s
// (SWITCHYARD_HEALTH_INTERVAL in docker-compose.yml) and flips an instance
// after 2 consecutive results; Consul's own check runs every 2 s too.
const (
	healthFlipBound = 10 * time.Second
	stackUpBound    = 3 * time.Minute
)

var backends = []string{"backend-1", "backend-2", "backend-3"}

// TestComposeUp brings up the real docker-compose.yml under Docker and
// checks what the README (Try it) promises, through the published ports.
func TestComposeUp(t *testing.T) {
	c, ctx := stack(t, "sytest", "docker-compose.yml", "deployments/dockertest/standins.yml")
	client := &http.Client{Timeout: 5 * time.Second}
	const gateway, admin = "http://127.0.0.1:8080", "http://127.0.0.1:9901"

	waitHealthy(t, ctx, c, stackUpBound, "consul", "jaeger", "switchyard", "backend-1", "backend-2", "backend-3")

	t.Run("the gateway runs as nonroot on a read-only root filesystem", func(t *testing.T) { checkHardened(t, ctx, c) })

	testenv.WaitFor(t, 30*time.Second, "all three backends routable in /api/v1/services", func() bool {
		s, err := getServices(client, admin)
		return err == nil && len(s.routable()) == 3
	})

	t.Run("curl localhost:8080 rotates over the three backends", func(t *testing.T) { checkRotation(t, client, gateway) })

	t.Run("the dashboard and /api/v1/services answer on 9901", func(t *testing.T) { checkAdmin(t, client, admin) })

	t.Run("POST localhost:9002/admin/health takes backend-2 out and back", func(t *testing.T) { checkHealthFlip(t, client, gateway, admin) })

	t.Run("docker compose stop backend-2 under steady traffic fails no request", func(t *testing.T) { checkStopUnderLoad(t, ctx, c, client, gateway, admin) })

	t.Run("a request's trace is in Jaeger with the server and client spans", func(t *testing.T) {
		checkTrace(t, client, gateway, "http://127.0.0.1:16686")
	})

	t.Run("the gateway container starts and is ready", func(t *testing.T) {
		readyAfterRestart(t, ctx, c, client, admin)
	})

	t.Run("docker compose down leaves nothing", func(t *testing.T) {
		if _, err := c.Run(ctx, "down", "-v", "--remove-orphans"); err != nil {
			t.Fatal(err)
		}
		left, err := c.Leftovers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			t.Errorf("after docker compose down: %q", left)
		}
	})
}

// checkHardened checks that the gateway and a backend run as nonroot on
// a read-only root filesystem, and logs the sizes of the images built.
func checkHardened(t *testing.T, ctx context.Context, c *dockertest.Compose) {
	t.Helper()
	for _, svc := range []string{"switchyard", "backend-1"} {
		id, err := c.ContainerID(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := c.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ct.HostConfig.ReadonlyRootfs {
			t.Errorf("%s: root filesystem is writable", svc)
		}
		top, err := c.Docker(ctx, "top", id, "-o", "pid,uid")
		if err != nil {
			t.Fatal(err)
		}
		// PID UID lines after a header.
		var uids []string
		for _, l := range strings.Split(strings.TrimSpace(top), "\n")[1:] {
			if f := strings.Fields(l); len(f) == 2 {
				uids = append(uids, f[1])
			}
		}
		if len(uids) == 0 || slices.ContainsFunc(uids, func(u string) bool { return u != "65532" }) {
			t.Errorf("%s: processes run as uid %q, want only 65532 (nonroot)", svc, uids)
		}
	}
	images, err := c.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for svc, ref := range images {
		size, err := c.Docker(ctx, "image", "inspect", "--format", "{{.Size}}", ref)
		if err == nil {
			t.Logf("image of %s: %s bytes", svc, strings.TrimSpace(size))
		}
	}
}

// checkRotation checks that sequential requests through gateway rotate
// over the three backends, each once in every three answers.
func checkRotation(t *testing.T, client *http.Client, gateway string) {
	t.Helper()
	var got []string
	for range 3 * len(backends) * 4 {
		name, err := testenv.GetBody(client, gateway+"/")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	for i := 0; i+3 <= len(got); i++ {
		w := slices.Clone(got[i : i+3])
		slices.Sort(w)
		if !slices.Equal(w, backends) {
			t.Fatalf("answers %q: %q at %d is not one of each backend (round-robin)", got, got[i:i+3], i)
		}
	}
}

// checkAdmin checks the dashboard and /api/v1/services at admin.
func checkAdmin(t *testing.T, client *http.Client, admin string) {
	t.Helper()
	body, err := testenv.GetBody(client, admin+"/")
	if err != nil || !strings.Contains(body, "<html") {
		t.Errorf("GET %s/: %v %.200q", admin, err, body)
	}
	s, err := getServices(client, admin)
	if err != nil {
		t.Fatal(err)
	}
	if s.Discovery.Provider != "consul" || s.Discovery.Stale {
		t.Errorf("discovery %+v, want consul and fresh", s.Discovery)
	}
	for _, in := range s.routable() {
		// Instances are reached by the address they advertise:
		// the compose service name, not 127.0.0.1 or a container IP.
		if !strings.Contains(in, "@backend-") || !strings.HasSuffix(in, ":9000") {
			t.Errorf("instance %s: want the advertised backend-N:9000", in)
		}
	}
}

// checkHealthFlip flips backend-2's health through its published port and
// checks that it leaves and rejoins rotation within healthFlipBound.
func checkHealthFlip(t *testing.T, client *http.Client, gateway, admin string) {
	t.Helper()
	flip := func(status int) {
		resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:9002/admin/health?status=%d", status), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST /admin/health?status=%d: %d", status, resp.StatusCode)
		}
	}
	flip(500)
	t.Cleanup(func() { flip(200) })
	start := time.Now()
	waitRoutable(t, client, admin, "backend-2", false)
	t.Logf("backend-2 out of rotation %s after status=500 (bound %s)", time.Since(start).Round(10*time.Millisecond), healthFlipBound)
	for range 12 {
		if name, err := testenv.GetBody(client, gateway+"/"); err != nil || name == "backend-2" {
			t.Fatalf("with backend-2 out: %q %v", name, err)
		}
	}
	flip(200)
	start = time.Now()
	waitRoutable(t, client, admin, "backend-2", true)
	t.Logf("backend-2 back in rotation %s after status=200 (bound %s)", time.Since(start).Round(10*time.Millisecond), healthFlipBound)
}

// checkStopUnderLoad stops and starts backend-2 with Compose under steady
// traffic and checks that no request failed.
func checkStopUnderLoad(t *testing.T, ctx context.Context, c *dockertest.Compose, client *http.Client, gateway, admin string) {
	t.Helper()
	l := testenv.StartLoad(client, testenv.LoadOptions{URLs: []string{gateway + "/"}, Workers: 4, Pace: 10 * time.Millisecond, MaxTime: 2 * time.Minute})
	defer l.Stop()
	if _, err := c.Run(ctx, "stop", "backend-2"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitRoutable(t, client, admin, "backend-2", false)
	testenv.WaitFor(t, 20*time.Second, "traffic to the other two after backend-2 stopped", func() bool {
		n := l.Since(stopped)
		return n["backend-1"] >= 50 && n["backend-3"] >= 50
	})
	if _, err := c.Run(ctx, "start", "backend-2"); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	testenv.WaitFor(t, 30*time.Second, "answers from backend-2 after docker compose start", func() bool {
		return l.Since(started)["backend-2"] >= 20
	})
	t.Logf("backend-2 answering %s after docker compose start", time.Since(started).Round(10*time.Millisecond))
	checkNoFailures(t, l.Stop())
}

// checkTrace sends a request with a traceparent through gateway and finds
// its trace in Jaeger's query API at jaegerURL: the gateway's server span,
// and its client span naming the instance that answered.
func checkTrace(t *testing.T, client *http.Client, gateway, jaegerURL string) {
	t.Helper()
	tr := testenv.FollowTrace(t, client, gateway, jaegerURL)
	if id, _ := tr.Attempt.Tag("switchyard.instance.id"); !strings.HasSuffix(id, "web-"+tr.Backend) {
		t.Errorf("client span switchyard.instance.id %q, want the instance web-%s that answered", id, tr.Backend)
	}
	if addr, _ := tr.Attempt.Tag("server.address"); addr != tr.Backend {
		t.Errorf("client span server.address %q, want %s (its compose name)", addr, tr.Backend)
	}
	if port, _ := tr.Attempt.Tag("server.port"); port != "9000" {
		t.Errorf("client span server.port %q, want 9000", port)
	}
}

// readyAfterRestart restarts the gateway container and measures the time
// from the container's start to the first 200 from /readyz on the
// published admin port.
func readyAfterRestart(t *testing.T, ctx context.Context, c *dockertest.Compose, client *http.Client, admin string) {
	t.Helper()
	if _, err := c.Run(ctx, "stop", "switchyard"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "start", "switchyard"); err != nil {
		t.Fatal(err)
	}
	var ready time.Time
	testenv.WaitFor(t, 30*time.Second, "/readyz after restart", func() bool {
		resp, err := client.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		ready = time.Now()
		return resp.StatusCode == http.StatusOK
	})
	id, err := c.ContainerID(ctx, "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway container: ready %s after it started (State.StartedAt to the first 200 from /readyz on :9901)",
		ready.Sub(ct.State.StartedAt).Round(time.Millisecond))
}
