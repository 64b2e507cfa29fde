package app

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// registerWeighted adds b to Consul as instance id of service with the
// given Consul weights and a passing TTL check.
func registerWeighted(t *testing.T, client *api.Client, service, id string, b *consulBackend, passing int, tags ...string) {
	t.Helper()
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: "127.0.0.1", Port: b.port, Tags: tags,
		Weights: &api.AgentWeights{Passing: passing, Warning: 1},
		Check:   &api.AgentServiceCheck{CheckID: "ttl:" + id, Name: service + " ttl", TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("registering %s: %v", id, err)
	}
}

func TestConsulCanaryByWeightsGetsItsShareWithinOnePercentThroughTheGateway(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	// v1: three instances of Consul weight 3; v2: one canary whose Consul
	// weight 5 is overridden by the tag to 1. Groups 9:1.
	var v1 []*consulBackend
	for _, id := range []string{"v1-a", "v1-b", "v1-c"} {
		b := newConsulBackend(t, id)
		v1 = append(v1, b)
		registerWeighted(t, client, "web", id, b, 3, tagEnable, "version=v1", "switchyard.health.slow_start=30s")
	}
	v2 := newConsulBackend(t, "v2")
	registerWeighted(t, client, "web", "v2", v2, 5, tagEnable, "version=v2", "switchyard.weight=1")

	a := consulApp(t, consulConfig(t, c))
	g := newGatewayClient(t, a)
	g.waitBodies(5*time.Second, "/web/x", "v1-a /web/x", "v1-b /web/x", "v1-c /web/x", "v2 /web/x")
	testenv.WaitFor(t, 5*time.Second, "weights 3,3,3,1 at full strength", func() bool {
		return weightsIn(a, "web") == "v1-a=3/3 v1-b=3/3 v1-c=3/3 v2=1/1"
	})
	// The admin API shows the same: policy, slow start, weights.
	view := servicesView(t, a)
	if len(view.Balancing) != 1 || view.Balancing[0].Policy != "round_robin" || view.Balancing[0].SlowStartSeconds != 30 ||
		len(view.Balancing[0].Instances) != 4 || view.Balancing[0].Instances[3].Weight != 1 || view.Balancing[0].Instances[3].EffectiveWeight != 1 {
		t.Errorf("balancing in /api/v1/services = %+v, want web, round_robin, slow start 30s from the tag, v2 at weight 1 (no ramp: found at startup)", view.Balancing)
	}

	for _, b := range append(v1, v2) {
		b.hits.Store(0)
	}
	// The 10,000 requests, through Consul and HTTP; the exact
	// per-cycle shares are in the gateway's own test
	// (TestCanaryWeightsGiveExactSharesOver10000Requests).
	const n, conc = 10000, 8
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for range n / conc {
				if code, _, err := g.get("/web/x"); err != nil || code != 200 {
					t.Errorf("client %d: GET = %d, %v", w, code, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var total, canary int64 = 0, v2.hits.Load()
	for _, b := range append(v1, v2) {
		total += b.hits.Load()
	}
	share := float64(canary) / float64(total)
	t.Logf("canary share %.4f (%d of %d)", share, canary, total)
	if total != n || share < 0.09 || share > 0.11 {
		t.Fatalf("canary got %d of %d requests (%.2f%%), want 10%% ± 1%% of %d", canary, total, 100*share, n)
	}
}

// weightsIn renders the balancing state of service as "id=effective/weight"
// with ids shortened to the service id.
func weightsIn(a *App, service string) string {
	var parts []string
	for _, s := range a.Gateway().Balance() {
		if s.Service != service {
			continue
		}
		for _, in := range s.Instances {
			id := in.ID[strings.LastIndexByte(in.ID, '/')+1:]
			parts = append(parts, fmt.Sprintf("%s=%g/%d", id, in.EffectiveWeight, in.Weight))
		}
	}
	return strings.Join(parts, " ")
}
