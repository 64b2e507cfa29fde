package faults

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/soak"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

var (
	soakDuration = flag.Duration("soak", 0, "soak duration (default 20s, or 2m with SWITCHYARD_FAULTS=full; 30m for the documented run)")
	soakRate     = flag.Int("soak-rate", 300, "soak requests per second")
)

// TestSoakUnderConsulChurn runs constant-rate load through the gateway
// binary while instances register, deregister and crash-restart in a real
// Consul, and asserts that no request that could have been saved failed and
// that the gateway's memory, goroutines and descriptors do not trend up.
func TestSoakUnderConsulChurn(t *testing.T) {
	d := *soakDuration
	if d == 0 {
		d = 20 * time.Second
		if fullFaults() {
			d = 2 * time.Minute
		}
	}
	consul := testenv.StartConsul(t) // skips with -short
	bin := testenv.BuildBinary(t, "./cmd/switchyard")
	port, adminPort := testenv.FreePort(t), testenv.FreePort(t)
	gw := testenv.Start(t, []string{
		"SWITCHYARD_CONFIG=",
		"SWITCHYARD_DISCOVERY_PROVIDER=consul",
		"CONSUL_HTTP_ADDR=" + consul.Addr,
		fmt.Sprintf("SWITCHYARD_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("SWITCHYARD_ADMIN_LISTEN=127.0.0.1:%d", adminPort),
		"SWITCHYARD_HEALTH_INTERVAL=1s",
		"SWITCHYARD_LOG_LEVEL=warn",
		"OTEL_SDK_DISABLED=true",
	}, bin)

	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, soak.Options{
		GatewayURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		AdminURL:   fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		GatewayPID: gw.Cmd.Process.Pid,
		Consul:     consul.Client(t),
		Service:    "soak",
		TagPrefix:  "switchyard",
		Duration:   d,
		Rate:       *soakRate,
		Stable:     2,
		Churn:      2 * time.Second,
		Sample:     max(d/60, time.Second),
		Log:        t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak %s at %d req/s:\n%s", d, *soakRate, rep)
	if rep.Avoidable != 0 {
		t.Errorf("%d avoidable failures", rep.Avoidable)
	}
	if rep.Sent < int64(float64(*soakRate)*d.Seconds()*0.8) {
		t.Errorf("only %d requests sent in %s at %d/s: the load side could not keep up", rep.Sent, d, *soakRate)
	}
	if trend := soak.Trend(rep.Samples); len(trend) > 0 {
		t.Errorf("resources trend upwards: %v", trend)
	}
	if rep.Events["register"] == 0 || rep.Events["restart"]+rep.Events["deregister"] == 0 {
		t.Errorf("too little churn: %v", rep.Events)
	}
}
