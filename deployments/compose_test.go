// Package deployments_test checks docker-compose.yml and the Dockerfile
// without a Docker engine: their structure, and that the gateway's own
// configuration loader accepts the environment the compose file gives it.
// Only deployments/dockertest, under a real engine, proves that they run.
package deployments_test

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard-gw/switchyard/config"
)

// composeFile is the part of the Compose specification this project uses.
// Commands must be in list form and environments in map form, so that
// other tests (and people) can read them without a shell.
type composeFile struct {
	Services map[string]service `yaml:"services"`
}

type service struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []any             `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

const (
	composePath    = "../docker-compose.yml"
	dockerfilePath = "Dockerfile" // deployments/Dockerfile, relative to this package
)

var backends = []string{"backend-1", "backend-2", "backend-3"}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v (commands must be lists, environments maps)", composePath, err)
	}
	return f
}

func (f composeFile) service(t *testing.T, name string) service {
	t.Helper()
	s, ok := f.Services[name]
	if !ok {
		t.Fatalf("%s has no service %q", composePath, name)
	}
	return s
}

// flags reads a Go-style command line: -flag value, --flag=value, --bool.
// Arguments that are not flags are skipped.
func flags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			out[k] = v
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out[name] = args[i+1]
			i++
			continue
		}
		out[name] = "true"
	}
	return out
}

func TestComposeHasTheWholeTopology(t *testing.T) {
	f := loadCompose(t)
	for _, name := range append([]string{"consul", "jaeger", "switchyard"}, backends...) {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
}

var versionTag = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?([-.][0-9A-Za-z.-]+)?$`)

func TestComposeImagesArePinnedOrBuiltHere(t *testing.T) {
	f := loadCompose(t)
	stages := dockerfileStages(t)
	for name, s := range f.Services {
		switch {
		case s.Build != nil:
			if s.Build.Dockerfile != "deployments/Dockerfile" || s.Build.Context != "." {
				t.Errorf("%s: build %+v, want context . and dockerfile deployments/Dockerfile", name, *s.Build)
			}
			if !slices.Contains(stages, s.Build.Target) {
				t.Errorf("%s: build target %q is not a stage of the Dockerfile (%q)", name, s.Build.Target, stages)
			}
		case s.Image != "":
			repo, tag, ok := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
			if !ok || !versionTag.MatchString(tag) {
				t.Errorf("%s: image %q is not pinned to a version tag (repo %q, tag %q)", name, s.Image, repo, tag)
			}
		default:
			t.Errorf("%s: neither image nor build", name)
		}
	}
	if got := f.Services["consul"].Image; !strings.HasPrefix(got, "hashicorp/consul:1.") {
		t.Errorf("consul image %q, want the official hashicorp/consul 1.x", got)
	}
	if got := f.Services["jaeger"].Image; !strings.HasPrefix(got, "jaegertracing/all-in-one:") {
		t.Errorf("jaeger image %q, want the official jaegertracing/all-in-one", got)
	}
}

func TestComposePublishesTheDocumentedPorts(t *testing.T) {
	f := loadCompose(t)
	want := map[string][]string{
		"consul":     {"8500:8500"},
		"jaeger":     {"16686:16686", "4317:4317", "4318:4318"},
		"backend-1":  {"9001:9000"},
		"backend-2":  {"9002:9000"},
		"backend-3":  {"9003:9000"},
		"switchyard": {"8080:8080", "9901:9901"},
	}
	for name, ports := range want {
		got := f.service(t, name).Ports
		for _, p := range ports {
			if !slices.Contains(got, p) {
				t.Errorf("%s publishes %q, want %q among them", name, got, p)
			}
		}
	}
}

func TestComposeConsulRunsADevAgentWithItsUI(t *testing.T) {
	cmd := loadCompose(t).service(t, "consul").Command
	if c := flags(cmd); len(cmd) == 0 || cmd[0] != "agent" || c["dev"] != "true" || c["client"] != "0.0.0.0" {
		t.Errorf("consul command %q, want agent -dev -client 0.0.0.0", cmd)
	}
	if hc := loadCompose(t).service(t, "consul").Healthcheck; hc == nil {
		t.Error("consul has no healthcheck")
	}
}

func TestComposeEveryBackendRegistersWithConsul(t *testing.T) {
	f := loadCompose(t)
	for _, name := range backends {
		t.Run(name, func(t *testing.T) {
			s := f.service(t, name)
			if s.Build == nil || s.Build.Target != "demo-backend" {
				t.Errorf("not built as the demo-backend target")
			}
			fl := flags(s.Command)
			for flag, want := range map[string]string{
				"consul-register": "true",
				"name":            name,
				"service":         "web",
				"listen":          "0.0.0.0:9000",
				"advertise":       name + ":9000", // its compose DNS name and listen port
			} {
				if fl[flag] != want {
					t.Errorf("--%s = %q, want %q (command %q)", flag, fl[flag], want, s.Command)
				}
			}
			tags := strings.Split(fl["tags"], ",")
			for _, tag := range []string{"switchyard.enable=true", "switchyard.path=/"} {
				if !slices.Contains(tags, tag) {
					t.Errorf("--tags %q lacks %s", fl["tags"], tag)
				}
			}
			if got := s.Environment["CONSUL_HTTP_ADDR"]; got != "consul:8500" {
				t.Errorf("CONSUL_HTTP_ADDR = %q, want consul:8500", got)
			}
			if s.DependsOn["consul"].Condition != "service_healthy" {
				t.Errorf("depends_on consul %+v, want condition service_healthy", s.DependsOn)
			}
		})
	}
}

// switchyardEnv is the gateway's whole configuration in the compose file.
var switchyardEnv = map[string]string{
	"SWITCHYARD_DISCOVERY_PROVIDER": "consul",
	"CONSUL_HTTP_ADDR":              "consul:8500",
	"SWITCHYARD_LISTEN":             "0.0.0.0:8080",
	"SWITCHYARD_ADMIN_LISTEN":       "0.0.0.0:9901",
	"OTEL_EXPORTER_OTLP_ENDPOINT":   "http://jaeger:4317",
	"OTEL_SERVICE_NAME":             "switchyard",
	"SWITCHYARD_LOG_FORMAT":         "json",
}

func TestComposeConfiguresTheGatewayByEnvironmentOnly(t *testing.T) {
	f := loadCompose(t)
	s := f.service(t, "switchyard")
	if s.Build == nil || s.Build.Target != "switchyard" {
		t.Error("switchyard is not built as the switchyard target")
	}
	for k, want := range switchyardEnv {
		if got, ok := s.Environment[k]; !ok || got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(s.Command) > 0 || len(s.Entrypoint) > 0 || len(s.Volumes) > 0 {
		t.Errorf("command %q, entrypoint %q, volumes %v: want none, the environment is the configuration", s.Command, s.Entrypoint, s.Volumes)
	}
	if _, ok := s.Environment["SWITCHYARD_CONFIG"]; ok {
		t.Error("SWITCHYARD_CONFIG is set: want environment-only configuration")
	}
	// viper ignores unknown variables, so a typo would silently not apply.
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[config.EnvName(k)] = true
	}
	for k := range s.Environment {
		if strings.HasPrefix(k, config.EnvPrefix+"_") && !known[k] {
			t.Errorf("%s is not a configuration key", k)
		}
	}
	// The addresses name services of this compose file.
	if host, _, _ := net.SplitHostPort(s.Environment["CONSUL_HTTP_ADDR"]); f.Services[host].Image == "" {
		t.Errorf("CONSUL_HTTP_ADDR host %q is not a service", host)
	}
	u, err := url.Parse(s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil || !slices.Contains(f.Services[u.Hostname()].Ports, u.Port()+":"+u.Port()) {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT %q does not reach a port of a service", s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	for _, dep := range []string{"consul", "jaeger"} {
		if s.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("depends_on %s %+v, want condition service_healthy", dep, s.DependsOn[dep])
		}
	}
}

func TestComposeWaitsOnlyForServicesWithAHealthcheck(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for dep, d := range s.DependsOn {
			target, ok := f.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %q", name, dep)
				continue
			}
			if d.Condition == "service_healthy" && (target.Healthcheck == nil || len(target.Healthcheck.Test) == 0) {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck: compose up would fail", name, dep, dep)
			}
		}
	}
}

func TestConfigLoaderAcceptsTheComposeEnvironment(t *testing.T) {
	env := loadCompose(t).service(t, "switchyard").Environment
	// Start from an environment without any variable the gateway reads, as
	// in the container; an empty value counts as unset.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, config.EnvPrefix+"_") || strings.HasPrefix(k, "CONSUL_") || strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("SWITCHYARD_CONFIG", "")
	for k, v := range env {
		t.Setenv(k, v)
	}

	cfg, err := config.Load("")
	if err != nil {
		t.Fatalf("config.Load with the compose environment: %v", err)
	}
	if cfg.Discovery.Provider != config.ProviderConsul {
		t.Errorf("discovery.provider = %q, want consul", cfg.Discovery.Provider)
	}
	if cfg.Listen != "0.0.0.0:8080" || cfg.Admin.Listen != "0.0.0.0:9901" {
		t.Errorf("listen %q, admin.listen %q: want both on 0.0.0.0 for the published ports", cfg.Listen, cfg.Admin.Listen)
	}
	if cfg.Log.Format != "json" {
		t.Errorf("log.format = %q, want json", cfg.Log.Format)
	}
	if a := cfg.Discovery.Consul.Address; a != "" && a != env["CONSUL_HTTP_ADDR"] {
		t.Errorf("discovery.consul.address = %q overrides CONSUL_HTTP_ADDR %q", a, env["CONSUL_HTTP_ADDR"])
	}
	if v, ok := env["SWITCHYARD_HEALTH_INTERVAL"]; ok {
		if d, _ := time.ParseDuration(v); cfg.Health.Interval != d {
			t.Errorf("health.interval = %v, want %s", cfg.Health.Interval, v)
		}
	}
}

// dockerfileStages returns the stage names of the Dockerfile and checks
// what every build of it relies on.
func dockerfileStages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	type stage struct{ name, user, entrypoint string }
	args := map[string]string{}
	var stages []stage
	byName := map[string]stage{}
	for _, line := range strings.Split(src, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		cur := len(stages) - 1
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if k, v, ok := strings.Cut(fields[1], "="); ok {
				args[k] = v
			}
		case "FROM":
			image := os.Expand(fields[1], func(k string) string { return args[k] })
			st, inherits := byName[image] // a later stage starts from an earlier one
			if !inherits {
				_, tag, ok := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
				if !ok || tag == "latest" {
					t.Errorf("Dockerfile: FROM %s is not pinned to a tag", image)
				}
				st = stage{}
			}
			st.name = ""
			if len(fields) >= 4 && strings.EqualFold(fields[2], "AS") {
				st.name = fields[3]
			}
			stages = append(stages, st)
		case "USER":
			stages[cur].user = fields[1]
		case "ENTRYPOINT":
			stages[cur].entrypoint = strings.Join(fields[1:], " ")
		}
		if cur = len(stages) - 1; cur >= 0 && stages[cur].name != "" {
			byName[stages[cur].name] = stages[cur]
		}
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "golang:1.26", "/out/switchyard /switchyard", "/out/demo-backend /demo-backend"} {
		if !strings.Contains(os.Expand(src, func(k string) string { return args[k] }), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	var names []string
	for _, st := range stages {
		names = append(names, st.name)
		if st.name == "switchyard" || st.name == "demo-backend" {
			if u := st.user; u == "" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
				t.Errorf("Dockerfile: stage %s runs as user %q, want a non-root USER", st.name, u)
			}
		}
	}
	// The default target (the last stage) is the gateway.
	if last := stages[len(stages)-1]; last.entrypoint != `["/switchyard"]` {
		t.Errorf("Dockerfile: the default target's ENTRYPOINT is %s, want [\"/switchyard\"]", last.entrypoint)
	}
	return names
}
