package telemetry

import (
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
)

func TestClientSpansCarryThePolicyAndTheEffectiveWeight(t *testing.T) {
	b := newBackend(t)
	heavy := discovery.Instance{ID: "web-1", Address: b.addr(), Weight: 9}
	r := newRig(t, rigOpts{instances: []discovery.Instance{heavy}})
	// The service switches to least_request with slow start; web-1 was
	// found at startup, so it keeps its full weight.
	snap := discovery.Snapshot{Services: []discovery.Service{{Name: "web", Instances: []discovery.Instance{heavy}}}}
	r.gw.SetServices(snap, func(discovery.Service) gateway.Balancing {
		return gateway.Balancing{Policy: config.PolicyLeastRequest, SlowStart: time.Minute}
	})
	t.Cleanup(r.gw.CloseIdleConnections)
	if got := r.do(t, "GET", "/api/x", "one", nil); got != 200 {
		t.Fatalf("status %d", got)
	}
	spans := r.flushed(t)
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want server and client", len(spans))
	}
	wantAttrs(t, spans[0], map[string]string{
		"switchyard.lb.policy":           "least_request",
		"switchyard.lb.effective_weight": "9",
	})
}
