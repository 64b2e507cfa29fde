package discovery

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// TestConsulAtCatalogScale runs the source against a real agent holding
// 1,000 opted-in services of 3 instances each: every instance is
// discovered, the source holds no more than its connection budget (counted
// by the kernel), the consul CLI keeps working beside it, and a
// registration, a deregistration, a check status change and a tag change
// each reach the snapshot. Latencies are logged, not asserted.
func TestConsulAtCatalogScale(t *testing.T) {
	const services, perService, budget = 1000, 3, 4
	c := testenv.StartConsul(t)
	client := c.Client(t)
	nodes := []string{"scale-0", "scale-1", "scale-2", "scale-3"}
	ports := loopbackListeners(t, len(nodes))
	registerNodes(t, client, nodes...)

	want := map[string][]string{} // service -> instance IDs, sorted
	var ops api.TxnOps
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		for i := range perService {
			k := (s + i) % len(nodes)
			in := catalogInstance{node: nodes[k], service: name, id: fmt.Sprintf("%s-%d", name, i), port: ports[k], tags: []string{tagOn}, status: api.HealthPassing}
			ops = append(ops, instanceOps(in, false)...)
			want[name] = append(want[name], in.node+"/"+in.id)
		}
		slices.Sort(want[name])
	}
	start := time.Now()
	applyTxn(t, client, ops)
	t.Logf("registered %d instances in %s", services*perService, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	a := runAgentSource(t, agentConfig(c), func(o *ConsulOptions) { o.MaxConnections = budget })
	took := a.waitFor(60*time.Second, "every instance discovered", start, func(s Snapshot) bool { return sameInstances(s, want) })
	t.Logf("full convergence: %s, %d requests, %d bytes in, %d out", took.Round(time.Millisecond), a.meter.Requests.Load(), a.meter.BytesIn.Load(), a.meter.BytesOut.Load())
	maxConns := checkBudget(t, c, a, budget)

	// The agent still serves everyone else: the consul CLI works beside
	// the gateway.
	out, err := exec.Command(testenv.Tool(t, "consul"), "catalog", "services", "-http-addr=http://"+c.Addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "svc-0999") {
		t.Errorf("consul catalog services beside the source: %v\n%s", err, testenv.Tail(string(out), 300))
	}

	type change struct {
		what string
		ops  api.TxnOps
		done func(Snapshot) bool
	}
	fresh := catalogInstance{node: nodes[0], service: "svc-new", id: "svc-new-0", port: ports[0], tags: []string{tagOn}, status: api.HealthPassing}
	gone := catalogInstance{node: nodes[7%len(nodes)], service: "svc-0007", id: "svc-0007-0"}
	remaining := slices.DeleteFunc(slices.Clone(want["svc-0007"]), func(id string) bool { return id == gone.node+"/"+gone.id })
	sick := catalogInstance{node: nodes[9%len(nodes)], service: "svc-0009", id: "svc-0009-0", status: api.HealthCritical}
	retag := func() api.TxnOps {
		var ops api.TxnOps
		for i := range perService {
			k := (11 + i) % len(nodes)
			in := catalogInstance{node: nodes[k], service: "svc-0011", id: fmt.Sprintf("svc-0011-%d", i), port: ports[k], tags: []string{tagOn, "switchyard.path=/eleven"}, status: api.HealthPassing}
			ops = append(ops, instanceOps(in, false)...)
		}
		return ops
	}
	changes := []change{
		{"a new registration", instanceOps(fresh, false), func(s Snapshot) bool {
			return slices.Equal(instanceIDs(s, "svc-new"), []string{"scale-0/svc-new-0"})
		}},
		{"a deregistration", instanceOps(gone, true), func(s Snapshot) bool {
			return slices.Equal(instanceIDs(s, "svc-0007"), remaining)
		}},
		{"a check turning critical", instanceOps(sick, false)[1:], func(s Snapshot) bool {
			svc, _ := s.Service("svc-0009")
			return len(svc.Instances) == 3 && svc.Instances[0].Registry.Status == StatusCritical
		}},
		{"a tag change", retag(), func(s Snapshot) bool {
			svc, _ := s.Service("svc-0011")
			return len(svc.Routes) == 1 && svc.Routes[0].PathPrefix == "/eleven"
		}},
	}
	for _, ch := range changes {
		start := time.Now()
		applyTxn(t, client, ch.ops)
		took := a.waitFor(10*time.Second, ch.what+" in the snapshot", start, ch.done)
		t.Logf("%s reached the snapshot in %s", ch.what, took.Round(100*time.Microsecond))
		maxConns = max(maxConns, checkBudget(t, c, a, budget))
	}
	if s := a.snap.Load(); !sameInstancesExcept(*s, want, "svc-new", "svc-0007") {
		t.Error("an unrelated service changed in the snapshot")
	}
	t.Logf("connections to the agent: at most %d seen by the kernel (budget %d); %d dials", maxConns, budget, a.meter.Dials.Load())
}

const tagOn = "switchyard.enable=true"

// checkBudget asserts that the source holds at most budget connections to
// the agent, counted by the kernel and by the source's dialer, and returns
// the kernel's count.
func checkBudget(t *testing.T, c *testenv.Consul, a *agentSource, budget int) int {
	t.Helper()
	n := establishedTo(t, c.Addr)
	if n > budget {
		t.Errorf("%d established connections to the agent, want at most %d", n, budget)
	}
	if open := a.meter.OpenConns.Load(); open > int64(budget) {
		t.Errorf("the dialer holds %d connections, want at most %d", open, budget)
	}
	return n
}

// sameInstances reports whether s holds exactly the services and instance
// IDs of want.
func sameInstances(s Snapshot, want map[string][]string) bool {
	if len(s.Services) != len(want) {
		return false
	}
	for _, svc := range s.Services {
		if !slices.Equal(instanceIDs(s, svc.Name), want[svc.Name]) {
			return false
		}
	}
	return true
}

// sameInstancesExcept is sameInstances for every service of want but skip.
func sameInstancesExcept(s Snapshot, want map[string][]string, skip ...string) bool {
	for name, ids := range want {
		if slices.Contains(skip, name) {
			continue
		}
		if !slices.Equal(instanceIDs(s, name), ids) {
			return false
		}
	}
	return true
}
