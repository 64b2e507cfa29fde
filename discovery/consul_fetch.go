package discovery

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/consul/api"
)

// This file holds the requests of the Consul source. Each function talks
// to Consul and hands back what it read; deciding what it means is left to
// the pure functions of consul_plan.go and consul_build.go.

// Server-side filters. Proxies and gateways are left out where the answer
// is read (consulInstances) too, for servers that ignore filters.
const (
	// typicalServices leaves Connect sidecars and gateways out of the
	// catalog answer: they copy their service's tags.
	typicalServices = `ServiceKind == ""`
	// failingOnly keeps the checks answer small while the catalog is
	// healthy: a status change shows as a check entering or leaving it.
	failingOnly = `Status != "passing"`
	// typicalEntries is the filter of a full service fetch.
	typicalEntries = `Service.Kind == ""`
	// nothing matches no entry: the answer of an index-only request is
	// "[]", and its X-Consul-Index is the service's own index.
	nothing = `Service.ID == "" and Service.ID != ""`
)

// fetchCatalog reads /v1/catalog/services, without proxies when
// typicalOnly. Tags come back sorted, so answers compare equal when
// nothing changed.
func fetchCatalog(client *api.Client, q *api.QueryOptions, typicalOnly bool) (map[string][]string, uint64, error) {
	if typicalOnly {
		q.Filter = typicalServices
	}
	services, meta, err := client.Catalog().Services(q)
	if err != nil {
		return nil, 0, err
	}
	if services == nil {
		services = map[string][]string{}
	}
	for _, tags := range services {
		slices.Sort(tags)
	}
	return services, meta.LastIndex, nil
}

// fetchFailingChecks reads the checks that are not passing.
func fetchFailingChecks(client *api.Client, q *api.QueryOptions) (map[string]failingCheck, uint64, error) {
	q.Filter = failingOnly
	checks, meta, err := client.Health().State(api.HealthAny, q)
	if err != nil {
		return nil, 0, err
	}
	return failingChecks(checks), meta.LastIndex, nil
}

// serviceAnswer is one full read of a service's health.
type serviceAnswer struct {
	insts   []Instance
	typical bool     // an entry of a typical service (not a proxy or gateway) came back
	nodes   []string // nodes its instances run on, for node-level checks
	index   uint64
	warns   []string
}

// fetchService reads /v1/health/service/<name> (every status, so the
// verdict can be explained), without blocking. prefix is the tag prefix.
func fetchService(ctx context.Context, client *api.Client, prefix, name string) (serviceAnswer, error) {
	q := (&api.QueryOptions{Filter: typicalEntries}).WithContext(ctx)
	entries, meta, err := client.Health().Service(name, "", false, q)
	if err != nil {
		return serviceAnswer{}, err
	}
	insts, warns := consulInstances(prefix, entries)
	typical := slices.ContainsFunc(entries, func(e *api.ServiceEntry) bool {
		return e != nil && e.Service != nil && e.Service.Kind == api.ServiceKindTypical
	})
	return serviceAnswer{insts: insts, typical: typical, nodes: entryNodes(entries), index: meta.LastIndex, warns: warns}, nil
}

// fetchIndex reads only a service's index: the same query as fetchService
// with a filter that matches nothing, so the body is "[]" whatever the size
// of the service.
func fetchIndex(ctx context.Context, client *api.Client, name string) (uint64, error) {
	q := (&api.QueryOptions{Filter: nothing}).WithContext(ctx)
	_, meta, err := client.Health().Service(name, "", false, q)
	if err != nil {
		return 0, err
	}
	return meta.LastIndex, nil
}

// svcWhat names a service's watch in Status and logs.
func svcWhat(name string) string { return fmt.Sprintf("watching service %q", name) }
