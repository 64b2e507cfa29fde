package discovery

import (
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestCatalogDiff(t *testing.T) {
	tags := []string{"switchyard.enable=true"}
	tests := []struct {
		name     string
		old, cur map[string][]string
		want     []string
	}{
		{"the first answer reports every service", nil, map[string][]string{"b": tags, "a": nil}, []string{"a", "b"}},
		{"an unchanged answer reports nothing", map[string][]string{"a": tags}, map[string][]string{"a": tags}, nil},
		{"a new service is reported", map[string][]string{"a": tags}, map[string][]string{"a": tags, "b": tags}, []string{"b"}},
		{"a service that left is reported", map[string][]string{"a": tags, "b": tags}, map[string][]string{"a": tags}, []string{"b"}},
		{"a tag change is reported", map[string][]string{"a": tags}, map[string][]string{"a": {"switchyard.enable=true", "switchyard.path=/x"}}, []string{"a"}},
		{"an instance joining with the same tags is invisible here (the sweep finds it)", map[string][]string{"a": tags}, map[string][]string{"a": tags}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := catalogDiff(tt.old, tt.cur); !slices.Equal(got, tt.want) {
				t.Errorf("catalogDiff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChecksDiff(t *testing.T) {
	check := func(node, id, service, status, output string) *api.HealthCheck {
		sid := ""
		if service != "" {
			sid = service + "-1"
		}
		return &api.HealthCheck{Node: node, CheckID: id, ServiceID: sid, ServiceName: service, Status: status, Output: output}
	}
	tests := []struct {
		name         string
		old, cur     api.HealthChecks
		wantServices []string
		wantNodes    []string
	}{
		{
			name: "nothing failing, before and after, changes nothing",
		},
		{
			name:         "a check turning critical names its service",
			cur:          api.HealthChecks{check("n1", "c1", "web", "critical", "500")},
			wantServices: []string{"web"},
		},
		{
			name:         "a check passing again (it leaves the answer) names its service",
			old:          api.HealthChecks{check("n1", "c1", "web", "critical", "500")},
			wantServices: []string{"web"},
		},
		{
			name:         "a failing check whose output changes names its service",
			old:          api.HealthChecks{check("n1", "c1", "web", "critical", "500")},
			cur:          api.HealthChecks{check("n1", "c1", "web", "critical", "503")},
			wantServices: []string{"web"},
		},
		{
			name:         "warning to critical names its service",
			old:          api.HealthChecks{check("n1", "c1", "web", "warning", "slow")},
			cur:          api.HealthChecks{check("n1", "c1", "web", "critical", "slow")},
			wantServices: []string{"web"},
		},
		{
			name:      "a node check (serfHealth, maintenance) names its node",
			cur:       api.HealthChecks{check("n2", "serfHealth", "", "critical", "dead")},
			wantNodes: []string{"n2"},
		},
		{
			name: "an unchanged failing set names nothing, and passing checks a server failed to filter out are ignored",
			old:  api.HealthChecks{check("n1", "c1", "web", "critical", "500")},
			cur:  api.HealthChecks{check("n1", "c1", "web", "critical", "500"), check("n1", "c2", "api", "passing", "ok")},
		},
		{
			name:         "several changes name each service once, sorted",
			old:          api.HealthChecks{check("n1", "c1", "web", "critical", "x"), check("n1", "c3", "api", "critical", "x")},
			cur:          api.HealthChecks{check("n1", "c1", "web", "warning", "x"), check("n1", "c2", "web", "critical", "x"), check("n1", "c4", "db", "critical", "y")},
			wantServices: []string{"api", "db", "web"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			services, nodes := checksDiff(failingChecks(tt.old), failingChecks(tt.cur))
			if !slices.Equal(services, tt.wantServices) || !slices.Equal(nodes, tt.wantNodes) {
				t.Errorf("checksDiff = %q, %q; want %q, %q", services, nodes, tt.wantServices, tt.wantNodes)
			}
		})
	}
}

func TestWantedServices(t *testing.T) {
	catalog := map[string][]string{
		"web":    {"switchyard.enable=true"},
		"off":    {"switchyard.enable=false"},
		"plain":  {"v1"},
		"legacy": nil,
	}
	got := wantedServices("switchyard", catalog, map[string]bool{"legacy": true, "absent": true})
	want := map[string]bool{"web": true, "legacy": true, "absent": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("wantedServices = %v, want opted-in and config-named services %v", got, want)
	}
	if got := wantedServices("switchyard", nil, nil); len(got) != 0 {
		t.Errorf("wantedServices of nothing = %v, want empty", got)
	}
}

func TestBlockStateIndexRules(t *testing.T) {
	tests := []struct {
		name        string
		index, next uint64
		want        uint64
	}{
		{"a new index is followed", 10, 12, 12},
		{"the same index (the wait ran out) blocks again", 10, 10, 10},
		{"an index that goes backwards starts over without blocking", 10, 7, 0},
		{"an answer at index 0 never makes the next query block on 0", 0, 0, 1},
		{"the first answer is followed", 0, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := blockState{index: tt.index}
			s.answered(tt.next)
			if s.index != tt.want {
				t.Errorf("after index %d answered %d: %d, want %d", tt.index, tt.next, s.index, tt.want)
			}
		})
	}
}

func TestTokenBucketReserveGoesIntoDebt(t *testing.T) {
	b := newTokenBucket(4, 2)
	now := b.last
	if d := b.reserve(now); d != 0 {
		t.Fatalf("first reserve waits %s, want 0 (burst)", d)
	}
	if d := b.reserve(now); d != 0 {
		t.Fatalf("second reserve waits %s, want 0 (burst)", d)
	}
	if d := b.reserve(now); d < 240e6 || d > 260e6 {
		t.Errorf("third reserve waits %s, want 250ms at 4/s", d)
	}
}
