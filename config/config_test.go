package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validYAML = `
listen: 127.0.0.1:8080
health:
  interval: 3s
services:
  - name: web
    instances:
      - id: web-1
        address: 127.0.0.1:9001
      - address: 127.0.0.1:9002
    health:
      path: /ready
      unhealthy_threshold: 5
routes:
  - path_prefix: /
    service: web
`

func TestLoadReadsTheFileAndFillsDefaults(t *testing.T) {
	c, err := Load(writeFile(t, validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.Interval != 3*time.Second || c.Health.Timeout != time.Second || c.Admin.Listen != "127.0.0.1:9901" {
		t.Fatalf("health %+v admin %q", c.Health, c.Admin.Listen)
	}
	if got := c.Services[0].Instances[1].ID; got != "127.0.0.1:9002" {
		t.Fatalf("instance id defaults to %q, want the address", got)
	}
	eff := c.Services[0].Health.Apply(c.Health)
	if eff.Path != "/ready" || eff.UnhealthyThreshold != 5 || eff.Interval != 3*time.Second || eff.HealthyThreshold != 2 {
		t.Fatalf("per-service health = %+v, want overrides on top of the defaults", eff)
	}
}

func TestEnvironmentOverridesEveryKind(t *testing.T) {
	t.Setenv("SWITCHYARD_LISTEN", "127.0.0.1:18080")
	t.Setenv("SWITCHYARD_ADMIN_LISTEN", "127.0.0.1:19901")
	t.Setenv("SWITCHYARD_HEALTH_INTERVAL", "750ms")
	t.Setenv("SWITCHYARD_HEALTH_HEALTHY_THRESHOLD", "4")
	t.Setenv("SWITCHYARD_PROXY_TRUSTED_PROXIES", "10.0.0.0/8,192.168.0.1")
	c, err := Load(writeFile(t, validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:18080" || c.Admin.Listen != "127.0.0.1:19901" {
		t.Errorf("listen %q admin %q", c.Listen, c.Admin.Listen)
	}
	if c.Health.Interval != 750*time.Millisecond || c.Health.HealthyThreshold != 4 {
		t.Errorf("health = %+v", c.Health)
	}
	if got := c.Proxy.TrustedProxies.String(); got != "10.0.0.0/8,192.168.0.1/32" {
		t.Errorf("trusted proxies = %q", got)
	}
}

func TestBackendsShorthandFromEnvironmentAlone(t *testing.T) {
	t.Setenv("SWITCHYARD_CONFIG", "")
	t.Setenv("SWITCHYARD_BACKENDS", "http://127.0.0.1:9001, 127.0.0.1:9002")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 1 || c.Services[0].Name != "default" || len(c.Services[0].Instances) != 2 {
		t.Fatalf("services = %+v", c.Services)
	}
	if c.Services[0].Instances[0].Address != "127.0.0.1:9001" || c.Services[0].Instances[1].Address != "127.0.0.1:9002" {
		t.Fatalf("instances = %+v", c.Services[0].Instances)
	}
	if len(c.Routes) != 1 || c.Routes[0].PathPrefix != "/" || c.Routes[0].Service != "default" {
		t.Fatalf("routes = %+v", c.Routes)
	}
}

func TestListsCanBeGivenAsJSONInTheEnvironment(t *testing.T) {
	t.Setenv("SWITCHYARD_SERVICES", `[{"name":"api","instances":[{"address":"127.0.0.1:7000"}]}]`)
	t.Setenv("SWITCHYARD_ROUTES", `[{"path_prefix":"/api","service":"api","strip_prefix":true}]`)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Services[0].Name != "api" || !c.Routes[0].StripPrefix {
		t.Fatalf("services %+v routes %+v", c.Services, c.Routes)
	}
}

func TestInvalidConfigNamesTheKeyAndTheValue(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"a route to an unknown service", validYAML + "  - path_prefix: /x\n    service: nope\n", nil, []string{"routes[1].service", `"nope"`, "unknown service"}},
		{"a bad duration", validYAML, map[string]string{"SWITCHYARD_HEALTH_INTERVAL": "5 parsecs"}, []string{"health.interval", "5 parsecs"}},
		{"a bad listen address", validYAML, map[string]string{"SWITCHYARD_LISTEN": "localhost"}, []string{"listen", `"localhost"`}},
		{"a bad instance address", strings.Replace(validYAML, "127.0.0.1:9002", "127.0.0.1:99999", 1), nil, []string{"services[0].instances[1].address", "127.0.0.1:99999"}},
		{"a bad status range", validYAML, map[string]string{"SWITCHYARD_HEALTH_EXPECTED_STATUS": "2xx"}, []string{"health.expected_status", `"2xx"`}},
		{"a bad jitter", validYAML, map[string]string{"SWITCHYARD_HEALTH_JITTER": "150%"}, []string{"health.jitter", `"150%"`}},
		{"a bad per-service threshold", strings.Replace(validYAML, "unhealthy_threshold: 5", "unhealthy_threshold: 0", 1), nil, []string{"services[0].health.unhealthy_threshold", `"0"`}},
		{"an unknown key", validYAML + "helth:\n  path: /x\n", nil, []string{"helth"}},
		{"a bad merge policy", validYAML, map[string]string{"SWITCHYARD_HEALTH_MERGE": "either"}, []string{"health.merge", `"either"`}},
		{"a non-number threshold", validYAML, map[string]string{"SWITCHYARD_HEALTH_HEALTHY_THRESHOLD": "many"}, []string{"health.healthy_threshold", "many"}},
		{"a bad trusted proxy", validYAML, map[string]string{"SWITCHYARD_PROXY_TRUSTED_PROXIES": "10.0.0.0/33"}, []string{"proxy.trusted_proxies", "10.0.0.0/33"}},
		{"a bad backend", "", map[string]string{"SWITCHYARD_BACKENDS": "ftp://x:1"}, []string{"backends[0]", "ftp://x:1"}},
		{"no services at all", "listen: 127.0.0.1:1\n", nil, []string{"services", "no services"}},
		{"a connection budget too small for the two detectors", validYAML, map[string]string{"SWITCHYARD_DISCOVERY_PROVIDER": "consul", "SWITCHYARD_DISCOVERY_CONSUL_MAX_CONNECTIONS": "2"}, []string{"discovery.consul.max_connections", "2"}},
		{"a duplicate instance id", strings.Replace(validYAML, "- address: 127.0.0.1:9002", "- id: web-1\n        address: 127.0.0.1:9002", 1), nil, []string{"services[0].instances[1].id", `"web-1"`}},
		{"a bad balancing policy", validYAML, map[string]string{"SWITCHYARD_LB_POLICY": "fastest"}, []string{"lb.policy", `"fastest"`, "round_robin or least_request"}},
		{"a bad per-service balancing policy", strings.Replace(validYAML, "    health:\n", "    lb:\n      policy: random\n    health:\n", 1), nil, []string{"services[0].lb.policy", `"random"`}},
		{"a negative weight", strings.Replace(validYAML, "- address: 127.0.0.1:9002", "- address: 127.0.0.1:9002\n        weight: -1", 1), nil, []string{"services[0].instances[1].weight", `"-1"`, "0 (drain)"}},
		{"a weight above the cap", strings.Replace(validYAML, "- address: 127.0.0.1:9002", "- address: 127.0.0.1:9002\n        weight: 10001", 1), nil, []string{"services[0].instances[1].weight", `"10001"`}},
		{"a negative slow start", validYAML, map[string]string{"SWITCHYARD_HEALTH_SLOW_START": "-5s"}, []string{"health.slow_start", "-5s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			path := ""
			if c.yaml != "" {
				path = writeFile(t, c.yaml)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestMissingConfigFileIsAnError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want it to name the file", err)
	}
}

func TestEveryKeyHasAnEnvName(t *testing.T) {
	keys := Keys()
	for _, want := range []string{"listen", "admin.listen", "health.interval", "discovery.consul.address", "backends", "services", "routes"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("Keys() lacks %q", want)
		}
	}
	if got := EnvName("health.healthy_threshold"); got != "SWITCHYARD_HEALTH_HEALTHY_THRESHOLD" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestWeightsPolicyAndSlowStartLoad(t *testing.T) {
	y := strings.Replace(validYAML, "- address: 127.0.0.1:9002", "- address: 127.0.0.1:9002\n        weight: 0", 1)
	y = strings.Replace(y, "    health:\n", "    lb:\n      policy: least_request\n    health:\n      slow_start: 20s\n", 1)
	t.Setenv("SWITCHYARD_HEALTH_SLOW_START", "1m")
	c, err := Load(writeFile(t, y))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if w := s.Instances[1].Weight; w == nil || *w != 0 {
		t.Errorf("instances[1].weight = %v, want 0 (drain)", w)
	}
	if s.Instances[0].Weight != nil {
		t.Errorf("instances[0].weight = %d, want unset", *s.Instances[0].Weight)
	}
	if s.LB.Policy != PolicyLeastRequest || c.LB.Policy != PolicyRoundRobin {
		t.Errorf("lb.policy = %q, services[0].lb.policy = %q; want round_robin and least_request", c.LB.Policy, s.LB.Policy)
	}
	if got := s.Health.Apply(c.Health).SlowStart; got != 20*time.Second || c.Health.SlowStart != time.Minute {
		t.Errorf("slow_start = %s (service), %s (global); want 20s and 1m", got, c.Health.SlowStart)
	}
}
