package app

import (
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
)

// Balancing returns how the gateway spreads the requests of a discovered
// service under cfg: the policy from services[].lb in the config file, else
// from the registry's tags, else lb.policy; slow start from the service's
// health settings (config file over tags over health.slow_start).
func Balancing(cfg *config.Config) func(discovery.Service) gateway.Balancing {
	file := make(map[string]string, len(cfg.Services))
	for _, s := range cfg.Services {
		file[s.Name] = s.LB.Policy
	}
	return func(s discovery.Service) gateway.Balancing {
		policy := cfg.LB.Policy
		if s.LB.Policy != "" {
			policy = s.LB.Policy
		}
		if p := file[s.Name]; p != "" {
			policy = p
		}
		return gateway.Balancing{Policy: policy, SlowStart: s.Health.Apply(cfg.Health).SlowStart}
	}
}
