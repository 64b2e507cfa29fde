package app

import (
	"fmt"
	"log/slog"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// newConsulSource builds the Consul source for cfg. The client starts from
// api.DefaultConfig, so CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and the other
// CONSUL_* variables work as for every Consul tool; discovery.consul.* keys
// (file or SWITCHYARD_DISCOVERY_CONSUL_*) that are set win over them.
func newConsulSource(cfg *config.Config, log *slog.Logger) (discovery.Source, error) {
	c := cfg.Discovery.Consul
	// The config file's services and route targets are watched even when
	// their tags do not opt in; their health sections win over tags.
	services := map[string]*config.HealthOverride{}
	for _, s := range cfg.Services {
		services[s.Name] = s.Health
	}
	for _, r := range cfg.Routes {
		if _, ok := services[r.Service]; !ok {
			services[r.Service] = nil
		}
	}
	src, err := discovery.NewConsul(discovery.ConsulOptions{
		Config:         consulAPIConfig(c),
		TagPrefix:      c.TagPrefix,
		Services:       services,
		WaitTime:       c.WaitTime,
		MaxBackoff:     c.MaxBackoff,
		MaxConnections: c.MaxConnections,
		Logger:         log.With("component", "consul"),
	})
	if err != nil {
		return nil, fmt.Errorf("discovery.consul: %w", err)
	}
	return src, nil
}

// consulAPIConfig starts from api.DefaultConfig (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...) and applies the keys that are set.
// The source builds one client per watch from it, each with the HTTP client
// timeout above wait*17/16 that blocking queries need.
func consulAPIConfig(c config.Consul) *api.Config {
	conf := api.DefaultConfig()
	if c.Address != "" {
		conf.Address = c.Address
	}
	if c.Scheme != "" {
		conf.Scheme = c.Scheme
	}
	if c.Token != "" {
		conf.Token = c.Token
		conf.TokenFile = "" // CONSUL_HTTP_TOKEN_FILE would otherwise win
	}
	if c.Datacenter != "" {
		conf.Datacenter = c.Datacenter
	}
	if c.CAFile != "" {
		conf.TLSConfig.CAFile = c.CAFile
	}
	if c.CertFile != "" {
		conf.TLSConfig.CertFile = c.CertFile
	}
	if c.KeyFile != "" {
		conf.TLSConfig.KeyFile = c.KeyFile
	}
	return conf
}
