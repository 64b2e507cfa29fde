package dockertest_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/dockertest"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// Bounds documented in docs/docker.md ("High availability").
const (
	// electionBound: a new Consul leader after the old one stopped.
	electionBound = 30 * time.Second
	// staleBound: a gateway shows its discovery stale after its agent
	// was cut off (SWITCHYARD_DISCOVERY_CONSUL_WAIT_TIME=30s in the HA file,
	// plus Consul's RPC hold time).
	staleBound = 90 * time.Second
	// convergeBound: both gateways route to the same instances after a
	// change in the registry, or after the cut-off agent came back.
	convergeBound = 90 * time.Second
)

type gatewayAddr struct{ name, proxy, admin string }

var haGateways = []gatewayAddr{
	{"gateway-a", "http://127.0.0.1:8081", "http://127.0.0.1:9911"},
	{"gateway-b", "http://127.0.0.1:8082", "http://127.0.0.1:9912"},
}

// TestHATopology runs deployments/docker-compose.ha.yml under Docker and,
// under steady traffic to both gateways, stops the Consul leader, then
// cuts gateway-a's agent off the servers and reconnects it.
func TestHATopology(t *testing.T) {
	c, ctx := stack(t, "syha", "deployments/docker-compose.ha.yml", "deployments/dockertest/standins.ha.yml")
	client := &http.Client{Timeout: 5 * time.Second}
	servers := []string{"consul-1", "consul-2", "consul-3"}
	waitHealthy(t, ctx, c, stackUpBound, append(servers, "agent-web", "agent-a", "agent-b",
		"backend-1", "backend-2", "backend-3", "gateway-a", "gateway-b")...)
	converge(t, client, 3, convergeBound, "both gateways route to the three backends")

	var urls []string
	for _, g := range haGateways {
		urls = append(urls, g.proxy+"/")
	}
	l := testenv.StartLoad(client, testenv.LoadOptions{URLs: urls, Workers: 2, Pace: 10 * time.Millisecond, MaxTime: 10 * time.Minute})
	defer l.Stop()
	ready := watchReady(client)
	defer ready.stop()

	t.Run("the Consul leader stops and a new one is elected", func(t *testing.T) {
		leader, err := raftLeader(ctx, c, servers)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(ctx, "stop", leader); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		rest := slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return s == leader })
		var next string
		testenv.WaitFor(t, electionBound, "a new leader among "+strings.Join(rest, ", "), func() bool {
			next, err = raftLeader(ctx, c, rest)
			return err == nil && next != leader
		})
		t.Logf("leader %s stopped; %s leader %s later", leader, next, time.Since(stopped).Round(10*time.Millisecond))
		converge(t, client, 3, convergeBound, "both gateways still route to the three backends")
	})

	t.Run("gateway-a's agent cut off the servers, then reconnected", func(t *testing.T) {
		id, err := c.ContainerID(ctx, "agent-a")
		if err != nil {
			t.Fatal(err)
		}
		ct, err := c.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var network, ip string
		for name, n := range ct.NetworkSettings.Networks {
			if strings.HasSuffix(name, "_cluster") {
				network, ip = name, n.IPAddress
			}
		}
		if network == "" {
			t.Fatalf("agent-a is on no *_cluster network: %v", ct.NetworkSettings.Networks)
		}
		if _, err := c.Docker(ctx, "network", "disconnect", network, id); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		reconnected := false
		reconnect := func() {
			if !reconnected {
				reconnected = true
				if _, err := c.Docker(ctx, "network", "connect", "--ip", ip, network, id); err != nil {
					t.Fatal(err)
				}
			}
		}
		defer reconnect()

		// While cut off, the registry changes: backend-3 stops and
		// deregisters. gateway-b sees it; gateway-a cannot, and its own
		// probes take backend-3 out.
		if _, err := c.Run(ctx, "stop", "backend-3"); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, convergeBound, "gateway-b without backend-3", func() bool {
			s, err := getServices(client, haGateways[1].admin)
			return err == nil && len(s.routable()) == 2 && !s.Discovery.Stale
		})
		testenv.WaitFor(t, staleBound, "gateway-a's discovery stale", func() bool {
			s, err := getServices(client, haGateways[0].admin)
			return err == nil && s.Discovery.Stale
		})
		sa, _ := getServices(client, haGateways[0].admin)
		t.Logf("gateway-a stale %s after the cut: %+v; routable %q", time.Since(cut).Round(10*time.Millisecond), sa.Discovery, sa.routable())
		if sa.routableByName()["backend-3"] {
			t.Errorf("gateway-a still routes to the stopped backend-3: %q", sa.routable())
		}
		if sb, err := getServices(client, haGateways[1].admin); err != nil || sb.Discovery.Stale {
			t.Errorf("gateway-b, whose agent was not cut off: %+v %v", sb.Discovery, err)
		}

		reconnect()
		back := time.Now()
		converge(t, client, 2, convergeBound, "both gateways fresh and without backend-3 after the reconnect")
		t.Logf("gateway-a fresh and converged %s after the reconnect", time.Since(back).Round(10*time.Millisecond))

		if _, err := c.Run(ctx, "start", "backend-3"); err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		converge(t, client, 3, convergeBound, "both gateways route to backend-3 again")
		t.Logf("backend-3 routed by both gateways %s after docker compose start", time.Since(started).Round(10*time.Millisecond))
	})

	checkNoFailures(t, l.Stop())
	if bad := ready.stop(); len(bad) > 0 {
		t.Errorf("/readyz was not 200 while each gateway had a good snapshot: %q", bad[:min(len(bad), 10)])
	}
}

// converge waits until every gateway's discovery is fresh and all route to
// the same n instances of web.
func converge(t *testing.T, client *http.Client, n int, timeout time.Duration, what string) {
	t.Helper()
	var tables [][]string
	testenv.WaitFor(t, timeout, what, func() bool {
		tables = tables[:0]
		for _, g := range haGateways {
			s, err := getServices(client, g.admin)
			if err != nil || s.Discovery.Stale {
				return false
			}
			tables = append(tables, s.routable())
		}
		for _, tb := range tables {
			if len(tb) != n || !slices.Equal(tb, tables[0]) {
				return false
			}
		}
		return true
	})
}

// raftLeader asks the first of servers that answers for the Raft leader's
// node name; the answer needs a leader (no -stale).
func raftLeader(ctx context.Context, c *dockertest.Compose, servers []string) (string, error) {
	var errs []string
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := c.Run(ctx, "exec", "-T", s, "consul", "operator", "raft", "list-peers")
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[3] == "leader" {
				return f[0], nil
			}
		}
		errs = append(errs, s+": no leader in "+out)
	}
	return "", fmt.Errorf("no leader: %s", strings.Join(errs, "; "))
}

// readyWatch polls every gateway's /readyz until stopped.
type readyWatch struct {
	quit chan struct{}
	done chan []string
	once sync.Once
	bad  []string
}

func watchReady(client *http.Client) *readyWatch {
	w := &readyWatch{quit: make(chan struct{}), done: make(chan []string, 1)}
	go func() {
		var bad []string
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				w.done <- bad
				return
			case <-tick.C:
			}
			for _, g := range haGateways {
				resp, err := client.Get(g.admin + "/readyz")
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), g.name, err))
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad = append(bad, fmt.Sprintf("%s %s: %d", time.Now().Format("15:04:05.000"), g.name, resp.StatusCode))
				}
			}
		}
	}()
	return w
}

// stop ends the watch and returns every answer that was not a 200.
func (w *readyWatch) stop() []string {
	w.once.Do(func() {
		close(w.quit)
		w.bad = <-w.done
	})
	return w.bad
}
