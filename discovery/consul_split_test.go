package discovery

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// TestConsulNamesAndTagsDetector runs the source at a budget that gives
// names and tags a detector of its own (/v1/catalog/services, unfiltered)
// beside the summary's, on a real dev agent: a new service, a tag change
// and a service leaving reach the snapshot, the tag change named by the
// catalog detector (not by a summary), within the budget.
func TestConsulNamesAndTagsDetector(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	ports := loopbackListeners(t, 1)
	registerNodes(t, client, "nt-0")
	inst := func(service string, tags ...string) catalogInstance {
		return catalogInstance{node: "nt-0", service: service, id: service + "-0", port: ports[0], tags: append([]string{tagOn}, tags...), status: api.HealthPassing}
	}
	applyTxn(t, client, instanceOps(inst("nt-a"), false))

	var (
		mu     sync.Mutex
		events []ConsulEvent
	)
	a := runAgentSource(t, agentConfig(c), func(o *ConsulOptions) {
		o.MaxConnections = splitConnections
		o.Trace = func(ev ConsulEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	})
	a.waitFor(20*time.Second, "nt-a discovered", time.Now(), func(s Snapshot) bool {
		return slices.Equal(instanceIDs(s, "nt-a"), []string{"nt-0/nt-a-0"})
	})

	applyTxn(t, client, instanceOps(inst("nt-b"), false))
	a.waitFor(20*time.Second, "a new service", time.Now(), func(s Snapshot) bool {
		return slices.Equal(instanceIDs(s, "nt-b"), []string{"nt-0/nt-b-0"})
	})

	retagged := time.Now()
	applyTxn(t, client, instanceOps(inst("nt-a", "switchyard.path=/aa"), false))
	a.waitFor(20*time.Second, "a tag change", time.Now(), func(s Snapshot) bool {
		svc, _ := s.Service("nt-a")
		return len(svc.Routes) == 1 && svc.Routes[0].PathPrefix == "/aa"
	})
	mu.Lock()
	byCatalog := slices.ContainsFunc(events, func(ev ConsulEvent) bool {
		return ev.Kind == "catalog" && ev.Acted.After(retagged) && slices.Contains(ev.Names, "nt-a")
	})
	mu.Unlock()
	if !byCatalog {
		t.Error("the tag change was not named by the catalog detector")
	}

	applyTxn(t, client, instanceOps(inst("nt-b"), true))
	a.waitFor(20*time.Second, "a service leaving", time.Now(), func(s Snapshot) bool {
		_, ok := s.Service("nt-b")
		return !ok
	})
	checkBudget(t, c, a, splitConnections)
	if a.src.summaryOff.Load() {
		t.Error("the summary detector stopped")
	}
}
