package deployments_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard-gw/switchyard/config"
)

const haComposePath = "docker-compose.ha.yml" // deployments/docker-compose.ha.yml

func loadHACompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(haComposePath)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v (commands must be lists, environments maps)", haComposePath, err)
	}
	return f
}

func TestHAComposeUsesTheConsulImageOfTheSingleStack(t *testing.T) {
	want := loadCompose(t).service(t, "consul").Image
	ha := loadHACompose(t)
	for _, name := range []string{"consul-1", "consul-2", "consul-3", "agent-web", "agent-a", "agent-b"} {
		if got := ha.Services[name].Image; got != want {
			t.Errorf("%s %s: image %q, want %q as in docker-compose.yml", haComposePath, name, got, want)
		}
	}
}

func TestConfigLoaderAcceptsEachHAGatewayEnvironment(t *testing.T) {
	ha := loadHACompose(t)
	for _, tc := range []struct{ gateway, agent string }{{"gateway-a", "agent-a:8500"}, {"gateway-b", "agent-b:8500"}} {
		t.Run(tc.gateway, func(t *testing.T) {
			env := ha.Services[tc.gateway].Environment
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(k, config.EnvPrefix+"_") || strings.HasPrefix(k, "CONSUL_") || strings.HasPrefix(k, "OTEL_") {
					t.Setenv(k, "")
				}
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load("")
			if err != nil {
				t.Fatalf("config.Load with the %s environment: %v", tc.gateway, err)
			}
			if env["CONSUL_HTTP_ADDR"] != tc.agent {
				t.Errorf("CONSUL_HTTP_ADDR %q, want its own agent %s", env["CONSUL_HTTP_ADDR"], tc.agent)
			}
			if cfg.Discovery.Provider != config.ProviderConsul || cfg.Discovery.Consul.WaitTime != 30*time.Second {
				t.Errorf("discovery %q, wait_time %v: want consul, 30s (docs/docker.md)", cfg.Discovery.Provider, cfg.Discovery.Consul.WaitTime)
			}
			if cfg.Listen != "0.0.0.0:8080" || cfg.Admin.Listen != "0.0.0.0:9901" {
				t.Errorf("listen %q, admin.listen %q: want both on 0.0.0.0 for the published ports", cfg.Listen, cfg.Admin.Listen)
			}
		})
	}
}
