package discovery

import (
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"
)

// This file holds the pure decisions of the Consul source: what the change
// detectors' answers say changed. Nothing here talks to Consul or keeps
// state; everything is table-tested in consul_plan_test.go.

// catalogDiff compares two answers of /v1/catalog/services (name -> tags,
// sorted) and returns the services that appeared, left, or changed their
// tags, sorted. A nil old map (no answer yet) reports every new name.
func catalogDiff(old, cur map[string][]string) []string {
	var out []string
	for name, tags := range cur {
		if prev, ok := old[name]; !ok || !slices.Equal(prev, tags) {
			out = append(out, name)
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// failingCheck is what the checks detector keeps of one non-passing check.
type failingCheck struct {
	Node, Service, Status, Output string
}

// failingChecks indexes an answer of /v1/health/state/any?filter=Status !=
// "passing" by node and check ID. Passing checks that slip through (a
// server ignoring the filter) are dropped, so the answer compares equal
// whatever the server did with the filter.
func failingChecks(checks api.HealthChecks) map[string]failingCheck {
	out := make(map[string]failingCheck, len(checks))
	for _, c := range checks {
		if c == nil || c.Status == api.HealthPassing {
			continue
		}
		out[c.Node+"\x00"+c.CheckID] = failingCheck{Node: c.Node, Service: c.ServiceName, Status: c.Status, Output: c.Output}
	}
	return out
}

// checksDiff compares two indexes of failing checks. It returns the
// services whose failing checks appeared, left or changed, and the nodes
// whose node-level checks (serfHealth, maintenance) did: those concern
// every service on the node. Both sorted and without duplicates.
func checksDiff(old, cur map[string]failingCheck) (services, nodes []string) {
	touch := func(c failingCheck) {
		if c.Service == "" {
			nodes = append(nodes, c.Node)
		} else {
			services = append(services, c.Service)
		}
	}
	for k, c := range cur {
		if prev, ok := old[k]; !ok || prev != c {
			touch(c)
			if ok && prev.Service != c.Service {
				touch(prev)
			}
		}
	}
	for k, c := range old {
		if _, ok := cur[k]; !ok {
			touch(c)
		}
	}
	slices.Sort(services)
	slices.Sort(nodes)
	return slices.Compact(services), slices.Compact(nodes)
}

// wantedServices returns the services to watch: those whose tags opt in
// and those the config file names (always, even when absent from Consul).
func wantedServices(prefix string, catalog map[string][]string, named map[string]bool) map[string]bool {
	out := maps.Clone(named)
	if out == nil {
		out = map[string]bool{}
	}
	for name, tags := range catalog {
		if t, _ := parseTags(prefix, name, tags); t.Enabled {
			out[name] = true
		}
	}
	return out
}

// entryNodes returns the nodes the entries of one service run on, sorted.
func entryNodes(entries []*api.ServiceEntry) []string {
	var out []string
	for _, e := range entries {
		if e != nil && e.Node != nil {
			out = append(out, e.Node.Node)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
