package discovery

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/config"
)

func ptr[T any](v T) *T { return &v }

func mustStatuses(s string) config.StatusSet {
	set, err := config.ParseStatusSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

func TestParseTags(t *testing.T) {
	route := func(host, prefix string, strip bool) config.Route {
		return config.Route{Host: host, PathPrefix: prefix, Service: "web", StripPrefix: strip}
	}
	tests := []struct {
		name   string
		prefix string
		tags   []string
		want   consulTags
		warns  []string // substrings, one per expected warning
	}{
		{
			name: "an untagged service is not enabled and keeps the default route",
			tags: []string{"v1", "primary"},
			want: consulTags{Route: route("", "/web", false)},
		},
		{
			name: "enable=true opts in with the path /<service name>",
			tags: []string{"switchyard.enable=true"},
			want: consulTags{Enabled: true, Route: route("", "/web", false)},
		},
		{
			name: "enable=false keeps the service out",
			tags: []string{"switchyard.enable=false", "switchyard.path=/w"},
			want: consulTags{Route: route("", "/w", false)},
		},
		{
			name: "path, host and strip_prefix shape the route",
			tags: []string{"switchyard.enable=true", "switchyard.path=/api", "switchyard.host=api.example.com", "switchyard.strip_prefix=true"},
			want: consulTags{Enabled: true, Route: route("api.example.com", "/api", true)},
		},
		{
			name: "health tags become a health override with only those fields set",
			tags: []string{
				"switchyard.enable=true",
				"switchyard.health.path=/ready",
				"switchyard.health.interval=2s",
				"switchyard.health.timeout=500ms",
				"switchyard.health.healthy_threshold=3",
				"switchyard.health.unhealthy_threshold=1",
				"switchyard.health.expected_status=200,204",
				"switchyard.health.jitter=20%",
			},
			want: consulTags{Enabled: true, Route: route("", "/web", false), Health: &config.HealthOverride{
				Path:               ptr("/ready"),
				Interval:           ptr(2 * time.Second),
				Timeout:            ptr(500 * time.Millisecond),
				HealthyThreshold:   ptr(3),
				UnhealthyThreshold: ptr(1),
				ExpectedStatus:     ptr(mustStatuses("200,204")),
				Jitter:             ptr(config.Jitter(0.2)),
			}},
		},
		{
			name:  "a path without a leading slash is ignored with a warning",
			tags:  []string{"switchyard.enable=true", "switchyard.path=api"},
			want:  consulTags{Enabled: true, Route: route("", "/web", false)},
			warns: []string{`"switchyard.path=api" ignored`},
		},
		{
			name:  "an invalid interval is ignored while the other health tags apply",
			tags:  []string{"switchyard.enable=true", "switchyard.health.interval=soon", "switchyard.health.path=/hz"},
			want:  consulTags{Enabled: true, Route: route("", "/web", false), Health: &config.HealthOverride{Path: ptr("/hz")}},
			warns: []string{"health.interval=soon"},
		},
		{
			name:  "a negative timeout is ignored",
			tags:  []string{"switchyard.health.timeout=-1s"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"positive duration"},
		},
		{
			name:  "a threshold below one is ignored",
			tags:  []string{"switchyard.health.healthy_threshold=0"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"at least 1"},
		},
		{
			name:  "an invalid expected_status is ignored",
			tags:  []string{"switchyard.health.expected_status=ok"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"expected_status=ok"},
		},
		{
			name:  "a jitter of 100% or more is ignored",
			tags:  []string{"switchyard.health.jitter=150%"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"jitter=150%"},
		},
		{
			name:  "an enable value that is not a boolean leaves the service out",
			tags:  []string{"switchyard.enable=yes"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"want true or false"},
		},
		{
			name:  "a host with a slash is ignored",
			tags:  []string{"switchyard.enable=true", "switchyard.host=a/b"},
			want:  consulTags{Enabled: true, Route: route("", "/web", false)},
			warns: []string{"plain host name"},
		},
		{
			name:  "an unknown key is reported and ignored",
			tags:  []string{"switchyard.enable=true", "switchyard.priority=3"},
			want:  consulTags{Enabled: true, Route: route("", "/web", false)},
			warns: []string{"unknown key switchyard.priority"},
		},
		{
			name:  "a tag without a value is reported and ignored",
			tags:  []string{"switchyard.enable"},
			want:  consulTags{Route: route("", "/web", false)},
			warns: []string{"want switchyard.<key>=<value>"},
		},
		{
			name:  "instances that disagree get the value that sorts first, with a warning",
			tags:  []string{"switchyard.enable=true", "switchyard.path=/v2", "switchyard.path=/v1"},
			want:  consulTags{Enabled: true, Route: route("", "/v1", false)},
			warns: []string{"instances disagree on switchyard.path (/v1, /v2)"},
		},
		{
			name: "tags of another prefix and look-alike words are ignored",
			tags: []string{"traefik.enable=true", "switchyardx.enable=true", "switchyard"},
			want: consulTags{Route: route("", "/web", false)},
		},
		{
			name:   "a custom prefix is honoured",
			prefix: "edge",
			tags:   []string{"edge.enable=true", "edge.path=/e", "switchyard.path=/s"},
			want:   consulTags{Enabled: true, Route: route("", "/e", false)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := tt.prefix
			if prefix == "" {
				prefix = "switchyard"
			}
			got, warns := parseTags(prefix, "web", tt.tags)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseTags = %s, want %s", show(got), show(tt.want))
			}
			if len(warns) != len(tt.warns) {
				t.Fatalf("warnings = %q, want %d matching %q", warns, len(tt.warns), tt.warns)
			}
			for i, w := range tt.warns {
				if !strings.Contains(warns[i], w) || !strings.Contains(warns[i], `service "web"`) {
					t.Errorf("warning %d = %q, want it to name the service and contain %q", i, warns[i], w)
				}
			}
		})
	}
}

// show prints a consulTags with its health override's values, not pointers.
func show(c consulTags) string {
	return fmt.Sprintf("{Enabled:%v Route:%+v Health:%s}", c.Enabled, c.Route, showHealth(c.Health))
}

func showHealth(h *config.HealthOverride) string {
	if h == nil {
		return "nil"
	}
	var parts []string
	add := func(name string, set bool, v any) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%v", name, v))
		}
	}
	add("path", h.Path != nil, deref(h.Path))
	add("interval", h.Interval != nil, deref(h.Interval))
	add("timeout", h.Timeout != nil, deref(h.Timeout))
	add("healthy_threshold", h.HealthyThreshold != nil, deref(h.HealthyThreshold))
	add("unhealthy_threshold", h.UnhealthyThreshold != nil, deref(h.UnhealthyThreshold))
	add("expected_status", h.ExpectedStatus != nil, deref(h.ExpectedStatus))
	add("jitter", h.Jitter != nil, deref(h.Jitter))
	return "{" + strings.Join(parts, " ") + "}"
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

func TestMergeHealth(t *testing.T) {
	file := &config.HealthOverride{Path: ptr("/file"), Interval: ptr(time.Second)}
	tags := &config.HealthOverride{Path: ptr("/tags"), Timeout: ptr(2 * time.Second)}
	tests := []struct {
		name       string
		file, tags *config.HealthOverride
		want       *config.HealthOverride
	}{
		{"no settings anywhere gives no override", nil, nil, nil},
		{"tags alone apply as they are", nil, tags, tags},
		{"the config file alone applies as it is", file, nil, file},
		{
			"the config file wins over tags field by field and tags fill the rest", file, tags,
			&config.HealthOverride{Path: ptr("/file"), Interval: ptr(time.Second), Timeout: ptr(2 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeHealth(tt.file, tt.tags)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeHealth = %s, want %s", showHealth(got), showHealth(tt.want))
			}
		})
	}
	if *tags.Path != "/tags" || *file.Path != "/file" {
		t.Error("mergeHealth modified its arguments")
	}
}

func TestBuildService(t *testing.T) {
	insts := []Instance{{ID: "n1/web-1", Address: "10.0.0.1:80", Registry: RegistryHealth{Status: StatusPassing}}}
	file := &config.HealthOverride{Path: ptr("/file")}
	tagHealth := &config.HealthOverride{Path: ptr("/tags"), Interval: ptr(time.Second)}
	tests := []struct {
		name string
		tags consulTags
		file *config.HealthOverride
		want Service
	}{
		{
			name: "an opted-in service asks for its route and merges health with the file winning",
			tags: consulTags{Enabled: true, Route: config.Route{PathPrefix: "/api", Service: "web"}, Health: tagHealth},
			file: file,
			want: Service{Name: "web", Instances: insts, Routes: []config.Route{{PathPrefix: "/api", Service: "web"}},
				Health: &config.HealthOverride{Path: ptr("/file"), Interval: ptr(time.Second)}},
		},
		{
			name: "a service only the config file names asks for no route and ignores its tags",
			tags: consulTags{Route: config.Route{PathPrefix: "/web", Service: "web"}, Health: tagHealth},
			file: file,
			want: Service{Name: "web", Instances: insts, Health: file},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildService("web", tt.tags, insts, tt.file); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("buildService = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func entry(node, nodeAddr, id, addr string, port int, checks ...*api.HealthCheck) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: nodeAddr},
		Service: &api.AgentService{ID: id, Service: "web", Address: addr, Port: port},
		Checks:  checks,
	}
}

func TestConsulInstances(t *testing.T) {
	passing := RegistryHealth{Status: StatusPassing}
	tests := []struct {
		name    string
		entries []*api.ServiceEntry
		want    []Instance
		warns   int
	}{
		{
			name:    "an empty answer gives an empty, non-nil list",
			entries: nil,
			want:    []Instance{},
		},
		{
			name:    "the ID is node/service-id and the address is the service address",
			entries: []*api.ServiceEntry{entry("n1", "10.0.0.1", "web-1", "10.1.1.1", 8080)},
			want:    []Instance{{ID: "n1/web-1", Address: "10.1.1.1:8080", Registry: passing}},
		},
		{
			name:    "a service without an address falls back to the node address",
			entries: []*api.ServiceEntry{entry("n1", "10.0.0.1", "web-1", "", 8080)},
			want:    []Instance{{ID: "n1/web-1", Address: "10.0.0.1:8080", Registry: passing}},
		},
		{
			name:    "an IPv6 address is bracketed",
			entries: []*api.ServiceEntry{entry("n1", "::1", "web-1", "", 8080)},
			want:    []Instance{{ID: "n1/web-1", Address: "[::1]:8080", Registry: passing}},
		},
		{
			name: "the same service ID on two nodes gives two instances, sorted by ID",
			entries: []*api.ServiceEntry{
				entry("n2", "10.0.0.2", "web", "", 80),
				entry("n1", "10.0.0.1", "web", "", 80),
			},
			want: []Instance{
				{ID: "n1/web", Address: "10.0.0.1:80", Registry: passing},
				{ID: "n2/web", Address: "10.0.0.2:80", Registry: passing},
			},
		},
		{
			name: "an entry without a port or any address is skipped with a warning",
			entries: []*api.ServiceEntry{
				entry("n1", "10.0.0.1", "web-1", "", 0),
				entry("n2", "", "web-2", "", 80),
				entry("n3", "10.0.0.3", "web-3", "", 80),
				{Node: &api.Node{Node: "n4"}},
			},
			want:  []Instance{{ID: "n3/web-3", Address: "10.0.0.3:80", Registry: passing}},
			warns: 2,
		},
		{
			name: "a Connect sidecar and a gateway are not instances, though they carry the service's tags",
			entries: func() []*api.ServiceEntry {
				web := entry("n1", "10.0.0.1", "web-1", "", 8080)
				sidecar := entry("n1", "10.0.0.1", "web-1-sidecar-proxy", "", 21000)
				sidecar.Service.Kind = api.ServiceKindConnectProxy
				sidecar.Service.Tags = []string{"switchyard.enable=true"}
				gw := entry("n2", "10.0.0.2", "mesh-gw", "", 8443)
				gw.Service.Kind = api.ServiceKindMeshGateway
				return []*api.ServiceEntry{sidecar, web, gw}
			}(),
			want: []Instance{{ID: "n1/web-1", Address: "10.0.0.1:8080", Registry: passing}},
		},
		{
			name: "the registry health of each instance comes from its checks",
			entries: []*api.ServiceEntry{entry("n1", "10.0.0.1", "web-1", "", 80,
				&api.HealthCheck{CheckID: "service:web-1", Name: "web /health", ServiceID: "web-1", Status: "critical", Output: "HTTP GET: 500"})},
			want: []Instance{{ID: "n1/web-1", Address: "10.0.0.1:80",
				Registry: RegistryHealth{Status: StatusCritical, Check: "web /health", Output: "HTTP GET: 500"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns := consulInstances("switchyard", tt.entries)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("consulInstances = %+v, want %+v", got, tt.want)
			}
			if len(warns) != tt.warns {
				t.Errorf("warnings = %q, want %d", warns, tt.warns)
			}
		})
	}
}

func TestRegistryHealth(t *testing.T) {
	serf := func(status, output string) *api.HealthCheck {
		return &api.HealthCheck{CheckID: "serfHealth", Name: "Serf Health Status", Status: status, Output: output}
	}
	svc := func(id, status, output string) *api.HealthCheck {
		return &api.HealthCheck{CheckID: id, Name: id + " check", ServiceID: "web-1", Status: status, Output: output}
	}
	tests := []struct {
		name   string
		checks api.HealthChecks
		want   RegistryHealth
	}{
		{"an instance without checks is passing", nil, RegistryHealth{Status: StatusPassing}},
		{
			"passing node and service checks are passing and name no check",
			api.HealthChecks{serf("passing", "Agent alive"), svc("a", "passing", "ok")},
			RegistryHealth{Status: StatusPassing},
		},
		{
			"a warning service check makes the instance warning",
			api.HealthChecks{serf("passing", ""), svc("a", "warning", "slow")},
			RegistryHealth{Status: StatusWarning, Check: "a check", Output: "slow"},
		},
		{
			"a critical serfHealth node check makes the instance critical, for the agent only",
			api.HealthChecks{serf("critical", "Agent not live or unreachable"), svc("a", "passing", "")},
			RegistryHealth{Status: StatusCritical, Check: "Serf Health Status", Output: "Agent not live or unreachable", AgentOnly: true},
		},
		{
			"serfHealth and a failing service check are not the agent only",
			api.HealthChecks{serf("critical", "Agent not live or unreachable"), svc("a", "warning", "slow")},
			RegistryHealth{Status: StatusCritical, Check: "Serf Health Status", Output: "Agent not live or unreachable"},
		},
		{
			"serfHealth and node maintenance are not the agent only",
			api.HealthChecks{
				serf("critical", "Agent not live or unreachable"),
				{CheckID: api.NodeMaint, Name: "Node Maintenance Mode", Status: "critical", Output: "kernel upgrade"},
			},
			RegistryHealth{Status: StatusMaint, Check: "Node Maintenance Mode", Output: "kernel upgrade"},
		},
		{
			"a service check that happens to be called serfHealth is the service's",
			api.HealthChecks{{CheckID: "serfHealth", Name: "imposter", ServiceID: "web-1", Status: "critical", Output: "down"}},
			RegistryHealth{Status: StatusCritical, Check: "imposter", Output: "down"},
		},
		{
			"critical beats warning whatever the order",
			api.HealthChecks{svc("b", "critical", "down"), svc("a", "warning", "slow")},
			RegistryHealth{Status: StatusCritical, Check: "b check", Output: "down"},
		},
		{
			"node maintenance beats a critical service check",
			api.HealthChecks{
				svc("a", "critical", "down"),
				{CheckID: api.NodeMaint, Name: "Node Maintenance Mode", Status: "critical", Output: "kernel upgrade"},
			},
			RegistryHealth{Status: StatusMaint, Check: "Node Maintenance Mode", Output: "kernel upgrade"},
		},
		{
			"service maintenance reports maintenance",
			api.HealthChecks{{CheckID: api.ServiceMaintPrefix + "web-1", Name: "Service Maintenance Mode", ServiceID: "web-1", Status: "critical", Output: "draining"}},
			RegistryHealth{Status: StatusMaint, Check: "Service Maintenance Mode", Output: "draining"},
		},
		{
			"among equally bad checks the node check is named",
			api.HealthChecks{svc("a", "critical", "svc down"), serf("critical", "node down")},
			RegistryHealth{Status: StatusCritical, Check: "Serf Health Status", Output: "node down"},
		},
		{
			"among equally bad service checks the lowest check ID is named",
			api.HealthChecks{svc("b", "critical", "b down"), svc("a", "critical", "a down")},
			RegistryHealth{Status: StatusCritical, Check: "a check", Output: "a down"},
		},
		{
			"an unknown status counts as critical",
			api.HealthChecks{svc("a", "exploded", "?")},
			RegistryHealth{Status: StatusCritical, Check: "a check", Output: "?"},
		},
		{
			"a check without a name is named by its ID and its output is trimmed",
			api.HealthChecks{{CheckID: "service:web-1", ServiceID: "web-1", Status: "critical", Output: "  TTL expired\n"}},
			RegistryHealth{Status: StatusCritical, Check: "service:web-1", Output: "TTL expired"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registryHealth(tt.checks); got != tt.want {
				t.Errorf("registryHealth = %+v, want %+v", got, tt.want)
			}
		})
	}
}
