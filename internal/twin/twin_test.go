package twin_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
	"github.com/switchyard-gw/switchyard/internal/twin"
)

// TestComposeTopologyAsProcesses runs the wiring of docker-compose.yml as
// processes (not a Docker run; see the package comment): a real
// Consul and a real Jaeger, the demo backends and the gateway started with
// the compose commands and environments (addresses mapped to 127.0.0.1
// and free ports). It sends traffic, stops one backend as `docker compose
// stop` would, and checks that the backend leaves rotation without a
// single failed request, then finds a request's trace in Jaeger.
func TestComposeTopologyAsProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the docker-compose.yml topology as processes, with a real Consul and Jaeger from scripts/tools.sh; skipped with -short")
	}
	for _, tool := range []string{"CONSUL", "JAEGER"} {
		if os.Getenv("SWITCHYARD_SKIP_"+tool) == "1" {
			t.Skipf("SWITCHYARD_SKIP_%s=1", tool)
		}
	}
	topo := startTopology(t)

	const doomed = "backend-2"
	gateway := "http://" + topo.Addr("switchyard", 8080)
	admin := "http://" + topo.Addr("switchyard", 9901)
	// The Consul service id the demo backend registers: <service>-<name>.
	doomedID := flagValue(topo.Service(doomed).Args, "service") + "-" + doomed
	backends := []string{"backend-1", "backend-2", "backend-3"}
	client := &http.Client{Timeout: 5 * time.Second}

	t.Run("the compose commands and environments are used, with addresses mapped", func(t *testing.T) {
		checkWiring(t, topo, doomed)
	})

	// All three backends are in rotation: the admin API says so and the
	// answers, which name the backend, come from each of them.
	testenv.WaitFor(t, 30*time.Second, "all three backends routable", func() bool {
		web, err := webInstances(client, admin)
		if err != nil || len(web) != len(backends) {
			return false
		}
		for _, in := range web {
			if !in.Routable {
				return false
			}
		}
		return true
	})
	seen := map[string]bool{}
	testenv.WaitFor(t, 10*time.Second, "answers from all three backends", func() bool {
		if name, err := testenv.GetBody(client, gateway+"/"); err == nil {
			seen[name] = true
		}
		return len(seen) == len(backends)
	})

	// Traffic from four clients, throughout, bounded in count and time.
	load := testenv.StartLoad(client, testenv.LoadOptions{URLs: []string{gateway + "/"}, Workers: 4, Pace: 2 * time.Millisecond, Max: 40_000, MaxTime: 45 * time.Second})
	defer load.Stop()
	testenv.WaitFor(t, 10*time.Second, "load answered by "+doomed, func() bool { return load.AnsweredBy(doomed) >= 20 })

	// As `docker compose stop`: SIGTERM; the backend deregisters from
	// Consul, then finishes its in-flight requests and exits.
	if err := topo.StopService(doomed); err != nil {
		t.Fatalf("stopping %s: %v", doomed, err)
	}
	exited := time.Now()
	testenv.WaitFor(t, 15*time.Second, doomed+" out of rotation in /api/v1/services", func() bool {
		web, err := webInstances(client, admin)
		if err != nil {
			return false
		}
		for _, in := range web {
			if strings.HasSuffix(in.ID, "/"+doomedID) && in.Routable {
				return false
			}
		}
		return true
	})
	out := time.Now()
	t.Logf("%s out of rotation %s after it exited", doomed, out.Sub(exited).Round(time.Millisecond))
	// Keep sending after it left; then, once requests that might have
	// picked it before have long finished, count the gateway's attempts
	// to it, and again after more traffic: retries hide failed attempts
	// from clients, the gateway's own count does not.
	moreTraffic := func(after time.Time) func() bool {
		return func() bool {
			n := load.Since(after)
			return n["backend-1"] >= 100 && n["backend-3"] >= 100
		}
	}
	testenv.WaitFor(t, 20*time.Second, "traffic after the backend left", moreTraffic(out))
	attemptsBefore, err := upstreamAttempts(client, admin, doomedID)
	if err != nil {
		t.Fatal(err)
	}
	counted := time.Now()
	testenv.WaitFor(t, 20*time.Second, "more traffic after the backend left", moreTraffic(counted))
	results := load.Stop()

	if attemptsAfter, err := upstreamAttempts(client, admin, doomedID); err != nil {
		t.Error(err)
	} else if attemptsAfter != attemptsBefore {
		t.Errorf("upstream attempts to %s went from %d to %d while it was out of rotation", doomedID, attemptsBefore, attemptsAfter)
	}
	checkNoFailedRequest(t, results, doomed, exited)

	t.Run("a request's trace is in Jaeger", func(t *testing.T) {
		checkTrace(t, topo, client)
	})
}

// startTopology starts the twin in a temporary directory and stops it
// when the test ends, with every process's log tail if the test failed.
func startTopology(t *testing.T) *twin.Topology {
	t.Helper()
	// Building consul and jaeger on a fresh machine takes minutes; `make
	// test` builds them first (make tools). This bounds start-up only.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	topo, err := twin.Start(ctx, twin.Options{Dir: t.TempDir(), Log: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range topo.Services() {
				t.Logf("the end of %s's log:\n%s", s.Name, topo.LogTail(s.Name, 3000))
			}
		}
		if err := topo.Stop(); err != nil {
			t.Error(err)
		}
	})
	return topo
}

// checkNoFailedRequest: no request of the load failed, none started after
// doomed exited was answered by it, and some before were (the load covered
// its removal).
func checkNoFailedRequest(t *testing.T, results []testenv.Request, doomed string, exited time.Time) {
	t.Helper()
	counts := map[string]int{}
	failed := 0
	for _, r := range results {
		switch {
		case r.Err != "":
			failed++
			if failed <= 10 {
				t.Errorf("request started %s relative to %s's exit failed: %s", r.Start.Sub(exited).Round(time.Millisecond), doomed, r.Err)
			}
		case r.Backend == doomed && r.Start.After(exited):
			t.Errorf("request started %s after %s exited was answered by it", r.Start.Sub(exited), doomed)
		default:
			counts[r.Backend]++
		}
	}
	t.Logf("%d requests, %d failed; answered by %v", len(results), failed, counts)
	if failed > 0 {
		t.Errorf("%d of %d requests failed while %s left rotation", failed, len(results), doomed)
	}
	if counts[doomed] == 0 {
		t.Errorf("no request was answered by %s before it stopped: the load did not cover its removal", doomed)
	}
}

// checkWiring: the compose command and environment of the doomed backend
// and of the gateway are used, with every address mapped.
func checkWiring(t *testing.T, topo *twin.Topology, doomed string) {
	b2 := topo.Service(doomed)
	if got, want := flagValue(b2.Args, "listen"), topo.Addr(doomed, 9000); got != want {
		t.Errorf("%s --listen %q, want %q (0.0.0.0:9000 mapped)", doomed, got, want)
	}
	if got, want := flagValue(b2.Args, "advertise"), topo.Addr(doomed, 9000); got != want {
		t.Errorf("%s --advertise %q, want %q (%s:9000 mapped)", doomed, got, want, doomed)
	}
	if flagValue(b2.Args, "consul-register") != "true" {
		t.Errorf("%s does not register in Consul: %q", doomed, b2.Args)
	}
	env := map[string]string{}
	for _, kv := range topo.Service("switchyard").Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, want := range map[string]string{
		"SWITCHYARD_DISCOVERY_PROVIDER": "consul",
		"CONSUL_HTTP_ADDR":              topo.Addr("consul", 8500),
		"SWITCHYARD_LISTEN":             topo.Addr("switchyard", 8080),
		"SWITCHYARD_ADMIN_LISTEN":       topo.Addr("switchyard", 9901),
		"OTEL_EXPORTER_OTLP_ENDPOINT":   "http://" + topo.Addr("jaeger", 4317),
		"OTEL_SERVICE_NAME":             "switchyard",
	} {
		if env[k] != want {
			t.Errorf("gateway %s=%q, want %q", k, env[k], want)
		}
	}
}

// checkTrace: a request with a caller's traceparent is continued to the
// backend and its server and client spans reach Jaeger, linked.
func checkTrace(t *testing.T, topo *twin.Topology, client *http.Client) {
	tr := testenv.FollowTrace(t, client, "http://"+topo.Addr("switchyard", 8080), "http://"+topo.Addr("jaeger", 16686))
	if tr.Server.OperationName != "GET /" {
		t.Errorf("server span %q, want \"GET /\" (the route)", tr.Server.OperationName)
	}
	id, _ := tr.Attempt.Tag("switchyard.instance.id")
	if want := flagValue(topo.Service(tr.Backend).Args, "service") + "-" + tr.Backend; !strings.HasSuffix(id, "/"+want) {
		t.Errorf("switchyard.instance.id %q, want the Consul instance %s that answered", id, want)
	}
	_, port, _ := net.SplitHostPort(topo.Addr(tr.Backend, 9000))
	if got, _ := tr.Attempt.Tag("server.port"); got != port {
		t.Errorf("client span server.port %q, want %s (%s:9000 mapped)", got, port, tr.Backend)
	}
}
