package app

import (
	"testing"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

func TestConfigFileUpstreamSettingsAreLaidOverTags(t *testing.T) {
	yes := true
	cfg := &config.Config{Services: []config.Service{
		{Name: "greeter", TLS: config.UpstreamTLS{CAFile: "/etc/ca.pem", ServerName: "file.internal"}},
		{Name: "web", Protocol: config.ProtocolH2C},
	}}
	snap := discovery.Snapshot{Services: []discovery.Service{
		{Name: "greeter", Upstream: config.Upstream{Protocol: config.ProtocolGRPC, TLS: config.UpstreamTLS{Enabled: &yes, ServerName: "tag.internal"}}},
		{Name: "other", Upstream: config.Upstream{Protocol: config.ProtocolHTTPS}},
		{Name: "web"},
	}}
	got := upstreams(withFileUpstreams(cfg, snap))
	g := got["greeter"]
	if g.Proto() != config.ProtocolGRPC || !g.UsesTLS() || g.TLS.CAFile != "/etc/ca.pem" || g.TLS.ServerName != "file.internal" {
		t.Errorf("greeter = %+v: want grpc+tls from tags, CA and server name from the file", g)
	}
	if got["other"].Proto() != config.ProtocolHTTPS {
		t.Errorf("other = %+v: a service the file does not name keeps its tags", got["other"])
	}
	if got["web"].Proto() != config.ProtocolH2C {
		t.Errorf("web = %+v: want the file's h2c", got["web"])
	}
	if snap.Services[0].Upstream.TLS.CAFile != "" {
		t.Error("the snapshot was modified; snapshots are values")
	}
}
