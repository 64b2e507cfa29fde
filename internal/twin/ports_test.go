package twin

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	services := map[string]bool{"consul": true, "jaeger": true, "backend-1": true, "switchyard": true}
	ports := map[Endpoint]int{
		{"consul", 8500}:     18500,
		{"jaeger", 4317}:     14317,
		{"backend-1", 9000}:  19001,
		{"switchyard", 8080}: 18080,
	}
	lookup := func(ep Endpoint) int {
		p, ok := ports[ep]
		if !ok {
			t.Fatalf("lookup of unplanned endpoint %s", ep)
		}
		return p
	}
	tests := []struct {
		name, self, in, want string
	}{
		{"a service address becomes the loopback and its port", "backend-1", "consul:8500", "127.0.0.1:18500"},
		{"a URL keeps its scheme and path", "switchyard", "http://jaeger:4317/v1/traces", "http://127.0.0.1:14317/v1/traces"},
		{"a listen address on every interface is a port of the service itself", "backend-1", "0.0.0.0:9000", "127.0.0.1:19001"},
		{"an advertised own name is the same port as the listen address", "backend-1", "backend-1:9000", "127.0.0.1:19001"},
		{"the gateway's listen address", "switchyard", "0.0.0.0:8080", "127.0.0.1:18080"},
		{"a bare every-interface address becomes the loopback", "consul", "0.0.0.0", "127.0.0.1"},
		{"a host that is not a service is left alone", "backend-1", "localhost:8500", "localhost:8500"},
		{"a service name inside a longer host name is left alone", "backend-1", "x.consul:8500", "x.consul:8500"},
		{"a service name as a tag value is left alone", "backend-1", "switchyard.enable=true,switchyard.path=/", "switchyard.enable=true,switchyard.path=/"},
		{"plain values are left alone", "switchyard", "2s", "2s"},
		{"several addresses in one value are all rewritten", "switchyard", "consul:8500,http://jaeger:4317", "127.0.0.1:18500,http://127.0.0.1:14317"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rewrite(tt.in, tt.self, services, lookup, nil); got != tt.want {
				t.Errorf("rewrite(%q) from %s = %q, want %q", tt.in, tt.self, got, tt.want)
			}
		})
	}
}

// The plan of the real compose file: every address it names is mapped,
// every port it publishes is known, and start order follows depends_on.
func TestPlanOfTheComposeFile(t *testing.T) {
	root := filepath.Join("..", "..")
	services, err := loadCompose(filepath.Join(root, "docker-compose.yml"), root)
	if err != nil {
		t.Fatal(err)
	}
	level := map[string]int{}
	program := map[string]string{}
	for _, s := range services {
		level[s.name], program[s.name] = s.level, s.program
	}
	for name, want := range map[string]string{
		"consul": programConsul, "jaeger": programJaeger,
		"backend-1": "demo-backend", "backend-2": "demo-backend", "backend-3": "demo-backend",
		"switchyard": "switchyard",
	} {
		if program[name] != want {
			t.Errorf("%s runs %q, want %q", name, program[name], want)
		}
	}
	if level["consul"] != 0 || level["jaeger"] != 0 || level["backend-1"] != 1 || level["switchyard"] != 1 {
		t.Errorf("start levels %v: want consul and jaeger first, then the backends and the gateway", level)
	}

	ms := planPorts(services)
	got := map[string]int{}
	for _, m := range ms {
		got[m.Endpoint.String()] = m.Published
	}
	for ep, published := range map[string]int{
		"consul:8500": 8500, "jaeger:16686": 16686, "jaeger:4317": 4317, "jaeger:4318": 4318,
		"backend-1:9000": 9001, "backend-2:9000": 9002, "backend-3:9000": 9003,
		"switchyard:8080": 8080, "switchyard:9901": 9901,
		"consul:8300": 0, "jaeger:14269": 0,
	} {
		if p, ok := got[ep]; !ok || p != published {
			t.Errorf("%s: planned %t, published %d; want planned, published %d", ep, ok, p, published)
		}
	}

	if err := allocatePorts(ms, false, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, m := range ms {
		if m.HostPort == 0 || seen[m.HostPort] {
			t.Errorf("%s: host port %d is unset or shared", m.Endpoint, m.HostPort)
		}
		seen[m.HostPort] = true
	}
	names := map[string]bool{}
	for _, s := range services {
		names[s.name] = true
	}
	lookup := func(ep Endpoint) int {
		for _, m := range ms {
			if m.Endpoint == ep {
				return m.HostPort
			}
		}
		t.Fatalf("%s is not planned", ep)
		return 0
	}
	for _, s := range services {
		var all []string
		for _, a := range s.command {
			all = append(all, rewrite(a, s.name, names, lookup, nil))
		}
		for _, v := range s.env {
			all = append(all, rewrite(v, s.name, names, lookup, nil))
		}
		for _, v := range all {
			for name := range names {
				if strings.Contains(v, name+":") || strings.Contains(v, "0.0.0.0") {
					t.Errorf("%s: %q still names a compose address", s.name, v)
				}
			}
		}
	}
}

func TestAllocatePortsFallsBackWhenAPublishedPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	ms := []PortMapping{{Endpoint: Endpoint{"switchyard", 8080}, Published: port}}
	var busy []string
	if err := allocatePorts(ms, true, func(m PortMapping, err error) { busy = append(busy, m.Endpoint.String()) }); err != nil {
		t.Fatal(err)
	}
	if ms[0].HostPort == 0 || ms[0].HostPort == port {
		t.Errorf("host port %d, want a free one other than the taken %d", ms[0].HostPort, port)
	}
	if !slices.Equal(busy, []string{"switchyard:8080"}) {
		t.Errorf("reported busy %q, want [switchyard:8080]", busy)
	}

	var b strings.Builder
	writeMapping(&b, ms)
	if !strings.Contains(b.String(), strconv.Itoa(port)+" (not used)") {
		t.Errorf("mapping table does not say the published port is not used:\n%s", b.String())
	}
}
