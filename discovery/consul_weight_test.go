package discovery

import (
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestConsulWeight(t *testing.T) {
	svc := func(passing, warning int, tags ...string) *api.AgentService {
		return &api.AgentService{ID: "web-1", Service: "web", Tags: tags, Weights: api.AgentWeights{Passing: passing, Warning: warning}}
	}
	for _, tt := range []struct {
		name   string
		svc    *api.AgentService
		status string
		want   int // Instance.Weight
		share  int
		warn   string
	}{
		{"a registration without weights gets the default", svc(0, 0), StatusPassing, 0, 1, ""},
		{"Consul's default weights give the default", svc(1, 1), StatusPassing, 0, 1, ""},
		{"a passing instance takes Weights.Passing", svc(9, 1), StatusPassing, 9, 9, ""},
		{"an instance in warning takes Weights.Warning", svc(9, 2), StatusWarning, 2, 2, ""},
		{"Weights.Warning of 0 drains an instance in warning", svc(9, 0), StatusWarning, WeightDrain, 0, ""},
		{"the weight tag overrides Weights", svc(9, 1, "switchyard.weight=3"), StatusPassing, 3, 3, ""},
		{"the weight tag overrides Weights.Warning too", svc(9, 1, "switchyard.weight=3"), StatusWarning, 3, 3, ""},
		{"a weight tag of 0 drains the instance", svc(5, 5, "switchyard.weight=0"), StatusPassing, WeightDrain, 0, ""},
		{"a huge weight is capped", svc(1, 1, "switchyard.weight=99999999"), StatusPassing, 10000, 10000, ""},
		{"an invalid weight tag is reported and Weights used", svc(4, 1, "switchyard.weight=heavy"), StatusPassing, 4, 4, `tag "switchyard.weight=heavy" ignored`},
		{"a negative weight tag is reported", svc(1, 1, "switchyard.weight=-2"), StatusPassing, 0, 1, "want a whole number"},
		{"another prefix's weight tag is not ours", svc(1, 1, "other.weight=7"), StatusPassing, 0, 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, warn := consulWeight("switchyard", tt.svc, tt.status)
			if got != tt.want {
				t.Errorf("weight = %d, want %d", got, tt.want)
			}
			if s := (Instance{Weight: got}).Share(); s != tt.share {
				t.Errorf("share = %d, want %d", s, tt.share)
			}
			if (warn == "") != (tt.warn == "") || !strings.Contains(warn, tt.warn) {
				t.Errorf("warning = %q, want one containing %q", warn, tt.warn)
			}
		})
	}
}

func TestParseTagsReadsBalancingKeysAndLeavesWeightsToInstances(t *testing.T) {
	// A canary: instances carry different weight tags; that is no
	// disagreement to warn about, and the weight is not a service key.
	got, warns := parseTags("switchyard", "web", []string{
		"switchyard.enable=true", "switchyard.weight=1", "switchyard.weight=9",
		"switchyard.lb.policy=least_request", "switchyard.health.slow_start=30s",
	})
	if len(warns) != 0 {
		t.Fatalf("warnings %q, want none", warns)
	}
	if got.LB.Policy != "least_request" {
		t.Errorf("lb.policy = %q, want least_request", got.LB.Policy)
	}
	if got.Health == nil || got.Health.SlowStart == nil || got.Health.SlowStart.String() != "30s" {
		t.Errorf("health.slow_start = %+v, want 30s", got.Health)
	}
	_, warns = parseTags("switchyard", "web", []string{"switchyard.lb.policy=random", "switchyard.health.slow_start=soon"})
	if len(warns) != 2 || !strings.Contains(warns[0]+warns[1], "want round_robin or least_request") || !strings.Contains(warns[0]+warns[1], "slow_start=soon") {
		t.Errorf("warnings %q, want one for lb.policy and one for health.slow_start", warns)
	}
}
