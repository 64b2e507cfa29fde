package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

func demoBalance() []gateway.BalanceInfo {
	return []gateway.BalanceInfo{{
		Service: "web", Policy: "least_request", SlowStartSeconds: 30,
		Instances: []gateway.InstanceLoad{
			{ID: "web-1", Weight: 9, EffectiveWeight: 9, InFlight: 4},
			{ID: "web-2", Weight: 1, EffectiveWeight: 0.55, InFlight: 0},
			{ID: "web-3", Weight: 0},
		},
	}}
}

func TestBalancingShowsWeightsAndRequestsInFlight(t *testing.T) {
	opt := demoOptions(func() []health.ServiceStatus { return demoServices(time.Now()) })
	opt.Balance = demoBalance
	h := New(opt)

	var v ServicesResponse
	if err := json.NewDecoder(get(t, h, "GET", "/api/v1/services").Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Balancing) != 1 || v.Balancing[0].Instances[1].EffectiveWeight != 0.55 || v.Balancing[0].Instances[0].InFlight != 4 {
		t.Fatalf("balancing in the API = %+v, want the gateway's", v.Balancing)
	}

	page := get(t, h, "GET", "/").Body.String()
	for _, row := range []string{
		`<td>web</td><td class="mono">least_request</td><td class="mono">web-1</td><td class="num">9</td><td class="num">9</td><td class="num">4</td>`,
		// Ramping up (slow start): the effective weight is marked.
		`<td class="mono">web-2</td><td class="num">1</td><td class="num warn">0.55</td><td class="num">0</td>`,
		// Drained: weight 0 greyed out.
		`<td class="mono">web-3</td><td class="num none">0</td>`,
	} {
		if !strings.Contains(page, row) {
			t.Errorf("dashboard has no row %s", row)
		}
	}
}

func TestBalancingWithoutAGatewayIsAnEmptyList(t *testing.T) {
	h := New(demoOptions(func() []health.ServiceStatus { return nil }))
	body := get(t, h, "GET", "/api/v1/services").Body.String()
	if !strings.Contains(body, `"balancing": []`) {
		t.Errorf("API body has no empty balancing list:\n%s", body)
	}
	if page := get(t, h, "GET", "/").Body.String(); !strings.Contains(page, "No routable instances.") {
		t.Error("dashboard does not say there is nothing to balance")
	}
}
