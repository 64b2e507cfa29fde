package discovery

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// TestConsulOverHTTPSUsesHTTP2 runs the source against an agent serving
// its API over HTTPS with a certificate made for the test: every client
// negotiates HTTP/2 and says so in the log, the fetch workers share one
// multiplexed connection, and changes still reach the snapshot.
func TestConsulOverHTTPSUsesHTTP2(t *testing.T) {
	const services = 200
	c := testenv.StartConsulTLS(t)
	client := c.Client(t)
	ports := loopbackListeners(t, 2)
	registerNodes(t, client, "tls-0")
	var ops api.TxnOps
	want := map[string][]string{}
	for s := range services {
		name := fmt.Sprintf("svc-%03d", s)
		for i := range 2 {
			in := catalogInstance{node: "tls-0", service: name, id: fmt.Sprintf("%s-%d", name, i), port: ports[i], tags: []string{tagOn}, status: api.HealthPassing}
			ops = append(ops, instanceOps(in, false)...)
			want[name] = append(want[name], in.node+"/"+in.id)
		}
	}
	applyTxn(t, client, ops)

	conf := api.DefaultConfig()
	conf.Address, conf.Scheme, conf.Token = c.HTTPSAddr, "https", ""
	conf.TLSConfig = api.TLSConfig{CAFile: c.CAFile}
	a := runAgentSource(t, conf, nil)
	start := time.Now()
	took := a.waitFor(30*time.Second, "every instance discovered over HTTPS", start, func(s Snapshot) bool { return sameInstances(s, want) })
	t.Logf("full convergence over HTTPS: %s, %d requests on %d connections", took.Round(time.Millisecond), a.meter.Requests.Load(), a.meter.Dials.Load())

	for _, client := range []string{"fetch", "watching the catalog", "watching checks"} {
		if n := a.logs.countAttrs("consul connection", `client="`+client+`"`, `protocol="HTTP/2.0"`, `tls="TLS 1.3"`); n != 1 {
			t.Errorf("%q: %d start-up log lines saying HTTP/2.0 over TLS 1.3, want 1", client, n)
		}
	}
	// Two detectors and one connection carrying every fetch: HTTP/2
	// multiplexes the sweep's concurrent requests.
	if n := establishedTo(t, c.HTTPSAddr); n > 3 {
		t.Errorf("%d connections to the HTTPS API, want at most 3 (two detectors, one multiplexed fetch connection)", n)
	}

	gone := catalogInstance{node: "tls-0", service: "svc-042", id: "svc-042-1"}
	start = time.Now()
	applyTxn(t, client, instanceOps(gone, true))
	took = a.waitFor(10*time.Second, "the deregistration over HTTPS", start, func(s Snapshot) bool {
		return slices.Equal(instanceIDs(s, "svc-042"), []string{"tls-0/svc-042-0"})
	})
	t.Logf("deregistration reached the snapshot over HTTPS in %s", took.Round(100*time.Microsecond))
}
