package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/procnet"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// Helpers for the tests against a real Consul agent.

// agentSource runs a Consul source against a real agent and keeps the
// latest snapshot; every publication wakes waitFor.
type agentSource struct {
	t     *testing.T
	src   *Consul
	meter *ConsulMeter
	logs  *logRecorder
	snap  atomic.Pointer[Snapshot]
	bump  chan struct{} // closed and replaced on every publication
	mu    sync.Mutex
	stop  func()
}

func runAgentSource(t *testing.T, conf *api.Config, tweak func(*ConsulOptions)) *agentSource {
	t.Helper()
	a := &agentSource{t: t, meter: &ConsulMeter{}, logs: &logRecorder{out: t.Output()}, bump: make(chan struct{})}
	opt := ConsulOptions{Config: conf, Meter: a.meter, Logger: slog.New(a.logs)}
	if tweak != nil {
		tweak(&opt)
	}
	var err error
	if a.src, err = NewConsul(opt); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.src.Run(ctx, func(s Snapshot) {
			a.snap.Store(&s)
			a.mu.Lock()
			close(a.bump)
			a.bump = make(chan struct{})
			a.mu.Unlock()
		})
	}()
	a.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	t.Cleanup(a.stop)
	return a
}

// waitFor waits until cond holds for the latest snapshot and returns how
// long that took from start.
func (a *agentSource) waitFor(timeout time.Duration, what string, start time.Time, cond func(Snapshot) bool) time.Duration {
	a.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		bump := a.bump
		a.mu.Unlock()
		if s := a.snap.Load(); s != nil && cond(*s) {
			return time.Since(start)
		}
		select {
		case <-bump:
		case <-deadline.C:
			a.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// agentConfig is a client configuration for the plain HTTP API of c.
func agentConfig(c *testenv.Consul) *api.Config {
	conf := api.DefaultConfig()
	conf.Address, conf.Scheme, conf.Token = c.Addr, "http", ""
	return conf
}

// establishedTo counts the established TCP connections to addr (host:port,
// IPv4) in this network namespace: what the kernel sees, whatever the
// process believes it holds.
func establishedTo(t *testing.T, addr string) int {
	t.Helper()
	n, err := procnet.Established(addr)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		t.Skipf("cannot count connections from the OS: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	return n
}

// loopbackListeners starts n servers on 127.0.0.1 that the registered
// instances share, and returns their ports.
func loopbackListeners(t *testing.T, n int) []int {
	ports := make([]int, n)
	for i := range ports {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(srv.Close)
		ports[i] = srv.Listener.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// catalogInstance is one instance registered straight in the catalog, on
// a node of its own (not the agent's, whose anti-entropy would remove it),
// with one service check.
type catalogInstance struct {
	node, service, id string
	port              int
	tags              []string
	status            string
}

// instanceOps are the transaction operations that register in (or, with
// del, remove from) the catalog.
func instanceOps(in catalogInstance, del bool) api.TxnOps {
	svc := api.AgentService{ID: in.id, Service: in.service, Tags: in.tags, Address: "127.0.0.1", Port: in.port}
	if del {
		return api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: in.node, Service: svc}}}
	}
	return api.TxnOps{
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: in.node, Service: svc}},
		{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
			Node: in.node, CheckID: "check:" + in.id, Name: in.service + " check",
			Status: in.status, ServiceID: in.id, ServiceName: in.service,
		}}},
	}
}

// applyTxn applies ops in transactions of at most 64 operations (Consul's
// limit), from 4 goroutines.
func applyTxn(t *testing.T, client *api.Client, ops api.TxnOps) {
	t.Helper()
	const batch, workers = 64, 4
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Value
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(batch)) - batch
				if lo >= len(ops) {
					return
				}
				ok, resp, _, err := client.Txn().Txn(ops[lo:min(lo+batch, len(ops))], nil)
				if err == nil && !ok {
					err = fmt.Errorf("transaction rolled back: %+v", resp.Errors)
				}
				if err != nil {
					fail.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := fail.Load().(error); err != nil {
		t.Fatalf("registering in the catalog: %v", err)
	}
}

// registerNodes adds the nodes the instances live on.
func registerNodes(t *testing.T, client *api.Client, nodes ...string) {
	t.Helper()
	var ops api.TxnOps
	for _, n := range nodes {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: n, Address: "127.0.0.1"}}})
	}
	applyTxn(t, client, ops)
}
