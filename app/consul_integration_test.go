package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/admin"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/health"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// These tests run the whole gateway (app.New, app.Run) against a real
// `consul agent -dev`. Backends are httptest servers that register
// themselves in Consul with a TTL check that starts passing, so Consul's
// verdict is under the test's control and never waits for a check interval.

// consulBackend is one registered instance. Its probe path answers 200
// while healthy; the other of /health and /alive always answers 500; every
// other path answers "<name> <path>".
type consulBackend struct {
	name    string
	port    int
	healthy atomic.Bool
	hits    atomic.Int64 // requests other than probes
}

func newConsulBackend(t *testing.T, name string) *consulBackend {
	return newProbedBackend(t, name, "/health")
}

func newProbedBackend(t *testing.T, name, probePath string) *consulBackend {
	t.Helper()
	b := &consulBackend{name: name}
	b.healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || r.URL.Path == "/alive" {
			if r.URL.Path != probePath || !b.healthy.Load() {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
			}
			return
		}
		b.hits.Add(1)
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	b.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return b
}

// consulRegister adds b to Consul as instance id of service, with a TTL check
// (ID "ttl:<id>") that starts passing.
func consulRegister(t *testing.T, client *api.Client, service, id string, b *consulBackend, tags ...string) {
	t.Helper()
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: "127.0.0.1", Port: b.port, Tags: tags,
		Check: &api.AgentServiceCheck{CheckID: "ttl:" + id, Name: service + " ttl", TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("registering %s: %v", id, err)
	}
}

const tagEnable = "switchyard.enable=true"

// consulConfig is a consul-provider config on free ports with fast probes.
func consulConfig(t *testing.T, c *testenv.Consul) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Discovery.Provider = config.ProviderConsul
	cfg.Discovery.Consul.Address = c.Addr
	cfg.Discovery.Consul.MaxBackoff = 200 * time.Millisecond
	cfg.Health.Interval, cfg.Health.Timeout, cfg.Health.Jitter = 100*time.Millisecond, time.Second, 0
	cfg.Health.HealthyThreshold, cfg.Health.UnhealthyThreshold = 1, 1
	cfg.ShutdownTimeout = 5 * time.Second
	return &cfg
}

// consulApp validates cfg and runs the gateway until the test ends.
func consulApp(t *testing.T, cfg *config.Config) *App {
	t.Helper()
	if err := cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return startApp(t, cfg)
}

// gatewayClient sends requests through the gateway; it is closed at cleanup.
type gatewayClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newGatewayClient(t *testing.T, a *App) *gatewayClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &gatewayClient{t: t, base: "http://" + a.ProxyAddr(), c: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// get returns the status and body, or an error the caller counts.
func (g *gatewayClient) get(path string) (int, string, error) {
	resp, err := g.c.Get(g.base + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitBodies polls path until every want body has been answered at least
// once (round robin over instances) and returns.
func (g *gatewayClient) waitBodies(timeout time.Duration, path string, want ...string) {
	g.t.Helper()
	seen := map[string]bool{}
	testenv.WaitFor(g.t, timeout, fmt.Sprintf("GET %s to answer %q", path, want), func() bool {
		if code, body, err := g.get(path); err == nil && code == 200 {
			seen[body] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	})
}

func (g *gatewayClient) waitStatus(timeout time.Duration, path string, want int) {
	g.t.Helper()
	testenv.WaitFor(g.t, timeout, fmt.Sprintf("GET %s to answer %d", path, want), func() bool {
		code, _, err := g.get(path)
		return err == nil && code == want
	})
}

// servicesView fetches /api/v1/services from the admin listener.
func servicesView(t *testing.T, a *App) admin.ServicesResponse {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admin.ServicesResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func instanceIn(r admin.ServicesResponse, service, id string) (health.InstanceStatus, bool) {
	for _, s := range r.Services {
		if s.Name != service {
			continue
		}
		for _, in := range s.Instances {
			if in.ID == id {
				return in, true
			}
		}
	}
	return health.InstanceStatus{}, false
}

func consulID(serviceID string) string { return testenv.ConsulNode + "/" + serviceID }

func TestConsulTaggedServicesAreRoutedWithoutPerServiceConfig(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	web1, web2, apiB, hidden := newConsulBackend(t, "web-1"), newConsulBackend(t, "web-2"), newConsulBackend(t, "api-1"), newConsulBackend(t, "hidden-1")
	consulRegister(t, client, "web", "web-1", web1, tagEnable)
	consulRegister(t, client, "web", "web-2", web2, tagEnable)
	consulRegister(t, client, "api", "api-1", apiB, tagEnable, "switchyard.path=/v1", "switchyard.strip_prefix=true")
	consulRegister(t, client, "hidden", "hidden-1", hidden, "switchyard.path=/hidden")

	a := consulApp(t, consulConfig(t, c))
	g := newGatewayClient(t, a)
	g.waitBodies(5*time.Second, "/web/x", "web-1 /web/x", "web-2 /web/x")
	g.waitBodies(5*time.Second, "/v1/users", "api-1 /users")
	if code, _, err := g.get("/hidden"); err != nil || code != 404 {
		t.Errorf("GET /hidden = %d %v, want 404: the service did not opt in", code, err)
	}
	testenv.WaitFor(t, 5*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + a.AdminAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	view := servicesView(t, a)
	in, ok := instanceIn(view, "web", consulID("web-1"))
	if !ok || !in.Routable || in.Registry.Status != "passing" || in.Probe.Status != health.ProbeUp {
		t.Errorf("web-1 in /api/v1/services = %+v, want routable, consul passing, probe passing", in)
	}
	if view.Discovery.Provider != "consul" || view.Discovery.Stale || view.Discovery.LastSuccess == nil {
		t.Errorf("discovery = %+v, want consul, fresh", view.Discovery)
	}
}

func TestConsulNewRegistrationIsRouted(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	a := consulApp(t, consulConfig(t, c))
	g := newGatewayClient(t, a)
	// The gateway is watching an empty catalog.
	testenv.WaitFor(t, 5*time.Second, "the first snapshot", func() bool { return servicesView(t, a).Discovery.LastSuccess != nil })

	const runs = 7
	var took []time.Duration
	for i := range runs {
		if i > 0 {
			// Measure a quiet gateway, not the rate limit: each run costs
			// the catalog watch one token (4/s), so back-to-back runs would
			// wait ~250ms for the bucket after the first four.
			time.Sleep(300 * time.Millisecond)
		}
		name := "svc-" + strconv.Itoa(i)
		b := newConsulBackend(t, name)
		want := name + " /" + name
		start := time.Now()
		consulRegister(t, client, name, name+"-1", b, tagEnable)
		for {
			if code, body, err := g.get("/" + name); err == nil && code == 200 && body == want {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s not routed 5s after its registration", name)
			}
			time.Sleep(time.Millisecond) // polling granularity, not synchronisation
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	median := took[runs/2]
	t.Logf("consul registration-to-routed median: %s (runs: %v; probe interval %s, probed at once)", median, took, a.cfg.Health.Interval)
	// Target: 100ms plus one probe. The bound is loose so a loaded CI
	// machine does not flake; the median above is what matters.
	if median > time.Second {
		t.Errorf("median registration-to-routed %s, want well under 1s", median)
	}

	// A second instance of a routed service joins the rotation.
	b2 := newConsulBackend(t, "svc-0-2")
	consulRegister(t, client, "svc-0", "svc-0-2", b2, tagEnable)
	g.waitBodies(5*time.Second, "/svc-0", "svc-0 /svc-0", "svc-0-2 /svc-0")
}

// twoWebInstances registers web-1 and web-2, starts the gateway and waits
// until both are in rotation.
func twoWebInstances(t *testing.T) (*testenv.Consul, *api.Client, *App, *gatewayClient, *consulBackend, *consulBackend) {
	t.Helper()
	c := testenv.StartConsul(t)
	client := c.Client(t)
	b1, b2 := newConsulBackend(t, "web-1"), newConsulBackend(t, "web-2")
	consulRegister(t, client, "web", "web-1", b1, tagEnable)
	consulRegister(t, client, "web", "web-2", b2, tagEnable)
	a := consulApp(t, consulConfig(t, c))
	g := newGatewayClient(t, a)
	g.waitBodies(5*time.Second, "/web", "web-1 /web", "web-2 /web")
	return c, client, a, g, b1, b2
}

// onlyWeb1 asserts that the next requests all reach web-1.
func onlyWeb1(t *testing.T, g *gatewayClient) {
	t.Helper()
	for i := range 10 {
		if code, body, err := g.get("/web"); err != nil || code != 200 || body != "web-1 /web" {
			t.Fatalf("request %d: %d %q %v, want web-1 only", i, code, body, err)
		}
	}
}

func TestConsulCriticalTTLCheckRemovesTheInstanceWithinASecond(t *testing.T) {
	_, client, a, g, _, _ := twoWebInstances(t)
	start := time.Now()
	if err := client.Agent().UpdateTTL("ttl:web-2", "disk full", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Second, "web-2 out of rotation", func() bool { return a.Gateway().Healthy("web") == 1 })
	t.Logf("critical TTL check to out of rotation: %s", time.Since(start))
	onlyWeb1(t, g)
	in, _ := instanceIn(servicesView(t, a), "web", consulID("web-2"))
	if in.Routable || in.Registry.Status != "critical" || in.Registry.Check != "web ttl" || !strings.Contains(in.Reason, "disk full") {
		t.Errorf("web-2 = %+v, want out of rotation, critical, naming check \"web ttl\" and its output", in)
	}
}

func TestConsulProbeFailureRemovesAnInstanceConsulCallsPassing(t *testing.T) {
	_, _, a, g, _, b2 := twoWebInstances(t)
	b2.healthy.Store(false)
	testenv.WaitFor(t, 2*time.Second, "web-2 out of rotation", func() bool { return a.Gateway().Healthy("web") == 1 })
	onlyWeb1(t, g)
	in, _ := instanceIn(servicesView(t, a), "web", consulID("web-2"))
	if in.Routable || in.Registry.Status != "passing" || in.Probe.Status != health.ProbeDown || !strings.Contains(in.Reason, "probe") {
		t.Errorf("web-2 = %+v, want out of rotation by its probe while consul says passing", in)
	}
	b2.healthy.Store(true)
	g.waitBodies(2*time.Second, "/web", "web-2 /web")
}

func TestConsulDeregistrationRemovesTheInstance(t *testing.T) {
	_, client, a, g, _, _ := twoWebInstances(t)
	if err := client.Agent().ServiceDeregister("web-2"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Second, "web-2 gone", func() bool {
		_, ok := instanceIn(servicesView(t, a), "web", consulID("web-2"))
		return !ok
	})
	onlyWeb1(t, g)
}

func TestConsulAgentKilledMidTrafficKeepsServing(t *testing.T) {
	c, _, a, g, b1, b2 := twoWebInstances(t)

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		total    atomic.Int64
		failures atomic.Int64
		firstErr atomic.Pointer[string]
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := g.get("/web")
				total.Add(1)
				if err != nil || code != 200 || !strings.HasPrefix(body, "web-") {
					failures.Add(1)
					msg := fmt.Sprintf("%d %q %v", code, body, err)
					firstErr.CompareAndSwap(nil, &msg)
				}
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()

	testenv.WaitFor(t, 2*time.Second, "traffic", func() bool { return total.Load() > 50 })
	c.Kill()
	killedAt := total.Load()

	testenv.WaitFor(t, 5*time.Second, "/api/v1/services to show staleness", func() bool {
		d := servicesView(t, a).Discovery
		return d.Stale && d.LastError != "" && d.ErrorSince != nil && d.LastSuccess != nil
	})
	resp, err := http.Get("http://" + a.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d with Consul down and a last known good snapshot, want 200", resp.StatusCode)
	}

	// Probes go on without Consul: web-2 failing its probe leaves rotation.
	b2.healthy.Store(false)
	testenv.WaitFor(t, 2*time.Second, "web-2 out of rotation by probe", func() bool { return a.Gateway().Healthy("web") == 1 })
	before := b1.hits.Load()
	testenv.WaitFor(t, 5*time.Second, "more traffic to web-1", func() bool { return b1.hits.Load() > before+100 })

	stopTraffic()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed (first: %s), want none", n, total.Load(), *firstErr.Load())
	}
	t.Logf("%d requests, %d after the agent was killed, none failed", total.Load(), total.Load()-killedAt)
	if view := servicesView(t, a); len(view.Services) != 1 || len(view.Services[0].Instances) != 2 {
		t.Errorf("services = %+v, want web with both instances still known", view.Services)
	}
}

func TestConsulAgentRestartedEmptyIsFollowed(t *testing.T) {
	c := testenv.StartConsul(t)
	alpha := newConsulBackend(t, "alpha-1")
	consulRegister(t, c.Client(t), "alpha", "alpha-1", alpha, tagEnable)
	a := consulApp(t, consulConfig(t, c))
	g := newGatewayClient(t, a)
	g.waitBodies(5*time.Second, "/alpha", "alpha-1 /alpha")

	// Drive the old agent's index well past where a fresh one starts.
	for i := range 20 {
		if _, err := c.Client(t).KV().Put(&api.KVPair{Key: "bump/" + strconv.Itoa(i), Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
		consulRegister(t, c.Client(t), "alpha", "alpha-1", alpha, tagEnable, "v"+strconv.Itoa(i))
	}
	_, meta, err := c.Client(t).Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	oldIndex := meta.LastIndex

	c.Restart(t)
	start := time.Now()
	beta := newConsulBackend(t, "beta-1")
	consulRegister(t, c.Client(t), "beta", "beta-1", beta, tagEnable)
	_, meta, err = c.Client(t).Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.LastIndex >= oldIndex {
		t.Fatalf("new agent's index %d is not below the old one's %d; the test proves nothing", meta.LastIndex, oldIndex)
	}
	g.waitBodies(5*time.Second, "/beta", "beta-1 /beta")
	g.waitStatus(5*time.Second, "/alpha", 404)
	t.Logf("followed the restarted agent (index %d -> %d) in %s", oldIndex, meta.LastIndex, time.Since(start))
	testenv.WaitFor(t, 5*time.Second, "staleness to clear", func() bool { return !servicesView(t, a).Discovery.Stale })
}

func TestConsulConfigServicesAndRoutesStillWork(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	// Both backends answer only /alive: a probe of /health (the default,
	// or web's tag) would keep them out of rotation.
	legacy, web := newProbedBackend(t, "legacy-1", "/alive"), newProbedBackend(t, "web-1", "/alive")
	consulRegister(t, client, "legacy", "legacy-1", legacy) // not opted in
	consulRegister(t, client, "web", "web-1", web, tagEnable, "switchyard.health.path=/health")

	cfg := consulConfig(t, c)
	alive := "/alive"
	cfg.Services = []config.Service{
		{Name: "legacy", Health: &config.HealthOverride{Path: &alive}},
		{Name: "web", Health: &config.HealthOverride{Path: &alive}}, // wins over the tag
	}
	cfg.Routes = []config.Route{{PathPrefix: "/old", Service: "legacy", StripPrefix: true}}
	a := consulApp(t, cfg)
	g := newGatewayClient(t, a)

	g.waitBodies(5*time.Second, "/old/page", "legacy-1 /page")
	g.waitBodies(5*time.Second, "/web", "web-1 /web")
	if code, _, _ := g.get("/legacy"); code != 404 {
		t.Errorf("GET /legacy = %d, want 404: legacy did not opt in, only the config route leads to it", code)
	}
}
