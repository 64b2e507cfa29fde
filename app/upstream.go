package app

import (
	"slices"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// withFileUpstreams returns snap with each service's upstream settings
// (protocol, TLS, gRPC idempotent methods) taken from the config file where it sets them and from
// discovery (Consul tags) otherwise: the config file wins field by field,
// as for health settings. snap is not modified.
func withFileUpstreams(cfg *config.Config, snap discovery.Snapshot) discovery.Snapshot {
	if len(cfg.Services) == 0 {
		return snap
	}
	file := make(map[string]config.Upstream, len(cfg.Services))
	for _, s := range cfg.Services {
		file[s.Name] = s.Upstream()
	}
	out := discovery.Snapshot{Services: slices.Clone(snap.Services)}
	for i, s := range out.Services {
		if f, ok := file[s.Name]; ok {
			out.Services[i].Upstream = f.Over(s.Upstream)
		}
	}
	return out
}

// upstreams returns the upstream settings of every service in snap.
func upstreams(snap discovery.Snapshot) map[string]config.Upstream {
	out := make(map[string]config.Upstream, len(snap.Services))
	for _, s := range snap.Services {
		out[s.Name] = s.Upstream
	}
	return out
}
