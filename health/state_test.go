package health

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

func testSettings(t *testing.T, rise, fall int) settings {
	t.Helper()
	h := config.Default().Health
	h.HealthyThreshold, h.UnhealthyThreshold = rise, fall
	return newSettings(h, config.Upstream{})
}

// run feeds a sequence of probe results ('+' pass, '-' fail) and returns the
// probe status after each.
func run(st *instanceState, seq string) []ProbeStatus {
	var out []ProbeStatus
	for _, c := range seq {
		var err error
		if c == '-' {
			err = errors.New("connection refused")
		}
		st.record(err, time.Millisecond, time.Now())
		out = append(out, st.probe)
	}
	return out
}

func TestProbeStateMachine(t *testing.T) {
	U, D := ProbeUp, ProbeDown
	cases := []struct {
		name       string
		rise, fall int
		seq        string
		want       []ProbeStatus
	}{
		{"a new instance joins on its first pass", 2, 2, "+", []ProbeStatus{U}},
		{"a new instance that fails first is down at once", 2, 2, "-", []ProbeStatus{D}},
		{"one failure does not remove an instance when the threshold is two", 2, 2, "+-+", []ProbeStatus{U, U, U}},
		{"two consecutive failures remove it", 2, 2, "+--", []ProbeStatus{U, U, D}},
		{"rejoining needs healthy_threshold consecutive passes", 3, 2, "+--++-+++", []ProbeStatus{U, U, D, D, D, D, D, D, U}},
		{"thresholds of one flip on every result", 1, 1, "+-+-", []ProbeStatus{U, D, U, D}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &instanceState{probe: ProbeUnknown, set: ptr(testSettings(t, c.rise, c.fall))}
			got := run(st, c.seq)
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("after %q: %v, want %v", c.seq[:i+1], got, c.want)
				}
			}
		})
	}
}

// agentDown stands for a critical registry status that comes from the
// node's serfHealth check alone.
const agentDown = "agent-down"

func TestVerdict(t *testing.T) {
	cases := []struct {
		name          string
		merge         string
		registry      string
		acceptWarning bool
		probe         ProbeStatus
		routable      bool
		reason        string
	}{
		{"a static instance that passes probes is routable", config.MergeBoth, discovery.StatusNone, false, ProbeUp, true, "in rotation: static, probe: passing"},
		{"an instance never probed is not routable", config.MergeBoth, discovery.StatusNone, false, ProbeUnknown, false, "not probed yet"},
		{"consul critical removes an instance whose probe passes", config.MergeBoth, discovery.StatusCritical, false, ProbeUp, false, "consul: critical (check \"svc-check\": HTTP 500)"},
		{"a failing probe removes an instance consul calls passing", config.MergeBoth, discovery.StatusPassing, false, ProbeDown, false, "probe: 2 consecutive failures"},
		{"warning is not passing by default", config.MergeBoth, discovery.StatusWarning, false, ProbeUp, false, "consul: warning"},
		{"warning passes with accept_warning", config.MergeBoth, discovery.StatusWarning, true, ProbeUp, true, "in rotation"},
		{"merge probe ignores consul's verdict", config.MergeProbe, discovery.StatusCritical, false, ProbeUp, true, "in rotation: probe: passing"},
		{"merge consul ignores probes", config.MergeConsul, discovery.StatusPassing, false, ProbeDisabled, true, "in rotation: consul: passing"},
		{"merge consul follows consul critical", config.MergeConsul, discovery.StatusCritical, false, ProbeDisabled, false, "consul: critical"},
		{"maintenance is not routable", config.MergeBoth, discovery.StatusMaint, false, ProbeUp, false, "consul: maintenance"},
		{"the agent's liveness alone yields to a passing probe", config.MergeBoth, agentDown, false, ProbeUp, true, "in rotation: probe: passing (3 consecutive); consul: critical (check \"Serf Health Status\": Agent not live or unreachable) is the Consul agent's liveness"},
		{"the agent's liveness alone and a failing probe", config.MergeBoth, agentDown, false, ProbeDown, false, "consul: critical (check \"Serf Health Status\""},
		{"the agent's liveness alone and no probe yet", config.MergeBoth, agentDown, false, ProbeUnknown, false, "not probed yet"},
		{"merge consul follows the agent's liveness", config.MergeConsul, agentDown, false, ProbeDisabled, false, "consul: critical"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &instanceState{probe: c.probe, set: ptr(testSettings(t, 2, 2))}
			st.inst.Registry = discovery.RegistryHealth{Status: c.registry}
			if c.registry == agentDown {
				st.inst.Registry = discovery.RegistryHealth{Status: discovery.StatusCritical, Check: "Serf Health Status", Output: "Agent not live or unreachable", AgentOnly: true}
			}
			if c.registry == discovery.StatusCritical {
				st.inst.Registry.Check, st.inst.Registry.Output = "svc-check", "HTTP 500"
			}
			if c.probe == ProbeDown {
				st.fails, st.lastErr = 2, "connection refused"
			}
			if c.probe == ProbeUp {
				st.passes = 3
			}
			routable, reason := verdict(st, c.merge, c.acceptWarning)
			if routable != c.routable || !strings.Contains(reason, c.reason) {
				t.Fatalf("verdict = %v %q, want %v containing %q", routable, reason, c.routable, c.reason)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
