package discovery

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// TestConsulSidecarsAreNotServices registers a tagged service with a real
// Connect sidecar on a dev agent. The agent copies the service's tags to
// the sidecar (web-sidecar-proxy, Kind connect-proxy), so tag opt-in alone
// would route plaintext to its mTLS port; the source must leave it out,
// at the default budget (the catalog detector reads /v1/catalog/services
// filtered, or the summary) and at one that gives names and tags a
// detector of their own (/v1/catalog/services unfiltered).
func TestConsulSidecarsAreNotServices(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	ports := loopbackListeners(t, 1)
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: ports[0], Tags: []string{tagOn},
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{}},
	})
	if err != nil {
		t.Fatalf("registering web with a sidecar: %v", err)
	}
	// The premise: the sidecar is in the catalog, opted in by copied tags.
	testenv.WaitFor(t, 10*time.Second, "the sidecar in the catalog", func() bool {
		entries, _, err := client.Health().Service("web-sidecar-proxy", "", false, nil)
		return err == nil && len(entries) == 1 && entries[0].Service.Kind == api.ServiceKindConnectProxy &&
			slices.Contains(entries[0].Service.Tags, tagOn)
	})

	for _, budget := range []int{MinConsulConnections, 4, splitConnections} {
		t.Run(fmt.Sprintf("max_connections %d", budget), func(t *testing.T) {
			a := runAgentSource(t, agentConfig(c), func(o *ConsulOptions) { o.MaxConnections = budget })
			a.waitFor(10*time.Second, "web discovered", time.Now(), func(s Snapshot) bool {
				return slices.Equal(instanceIDs(s, "web"), []string{testenv.ConsulNode + "/web-1"})
			})
			s := *a.snap.Load()
			for _, svc := range s.Services {
				if svc.Name != "web" {
					t.Errorf("service %q in the snapshot, want only web (sidecars are not services)", svc.Name)
				}
				for _, in := range svc.Instances {
					if in.ID != testenv.ConsulNode+"/web-1" {
						t.Errorf("instance %s (%s) of %s in the snapshot, want only web-1", in.ID, in.Address, svc.Name)
					}
				}
			}
		})
	}
}
