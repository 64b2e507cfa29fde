package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

const tagOn = "switchyard.enable=true"

// nodes the instances are spread over (catalog registrations: no agent
// runs on them, so no anti-entropy removes them).
var nodes = []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}

// catalog is the registered state the benchmark expects to see.
type catalog struct {
	services, instances int
	want                map[string][]string // service -> instance IDs, sorted
}

func newCatalog(services, instances int) *catalog {
	c := &catalog{services: services, instances: instances, want: map[string][]string{}}
	for s := range services {
		name := svcName(s)
		for i := range instances {
			c.want[name] = append(c.want[name], inst(s, i).node+"/"+inst(s, i).id)
		}
		slices.Sort(c.want[name])
	}
	return c
}

func svcName(s int) string { return fmt.Sprintf("svc-%05d", s) }

// instance is one catalog registration with one service check.
type instance struct {
	node, service, id string
	port              int
	tags              []string
	status            string
}

func inst(s, i int) instance {
	return instance{
		node: nodes[(s+i)%len(nodes)], service: svcName(s), id: fmt.Sprintf("%s-%d", svcName(s), i),
		port: 20000 + i, tags: []string{tagOn}, status: api.HealthPassing,
	}
}

func (in instance) setOps() api.TxnOps {
	return api.TxnOps{
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: in.node, Service: api.AgentService{
			ID: in.id, Service: in.service, Tags: in.tags, Address: "127.0.0.1", Port: in.port}}},
		in.checkOp(),
	}
}

func (in instance) checkOp() *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: in.node, CheckID: "check:" + in.id, Name: in.service + " check",
		Status: in.status, ServiceID: in.id, ServiceName: in.service}}}
}

func (in instance) deleteOp() *api.TxnOp {
	return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: in.node, Service: api.AgentService{ID: in.id, Service: in.service}}}
}

// registerAll registers the nodes and every instance in transactions of
// 64 operations (Consul's limit) from 8 goroutines.
func (c *catalog) registerAll(client *api.Client) error {
	var ops api.TxnOps
	for _, n := range nodes {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: n, Address: "127.0.0.1"}}})
	}
	if err := txn(client, ops); err != nil {
		return err
	}
	ops = ops[:0]
	for s := range c.services {
		for i := range c.instances {
			ops = append(ops, inst(s, i).setOps()...)
		}
	}
	const batch, workers = 64, 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		jobs = make(chan api.TxnOps)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if err := txn(client, b); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for lo := 0; lo < len(ops); lo += batch {
		jobs <- ops[lo:min(lo+batch, len(ops))]
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("registering: %v (and %d more)", errs[0], len(errs)-1)
	}
	return nil
}

func txn(client *api.Client, ops api.TxnOps) error {
	ok, resp, _, err := client.Txn().Txn(ops, nil)
	if err == nil && !ok {
		var whats []string
		for _, e := range resp.Errors {
			whats = append(whats, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
		}
		err = fmt.Errorf("transaction rolled back: %s", strings.Join(whats, "; "))
	}
	return err
}
