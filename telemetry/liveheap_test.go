package telemetry

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/switchyard-gw/switchyard/config"
)

// liveHeapOf returns the live heap that n Telemetry instances made with
// env hold, per instance.
func liveHeapOf(t *testing.T, env map[string]string, n int) int64 {
	t.Helper()
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	tels := make([]*Telemetry, 0, n)
	before := heap()
	for range n {
		tel, err := New(context.Background(), Options{Config: config.Default().Telemetry, Getenv: func(k string) string { return env[k] },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		tels = append(tels, tel)
	}
	after := heap()
	for _, tel := range tels {
		tel.Shutdown(context.Background())
	}
	return (after - before) / int64(n)
}

// The garbage collector marks the live heap on every cycle, and with a
// small heap its goal is the 4 MiB minimum: whatever tracing keeps alive
// from the start is marked again and again and leaves less room between
// cycles. Turning tracing on, with nothing sampled, must keep little.
func TestTracingKeepsLittleLiveHeapWhenNothingIsSampled(t *testing.T) {
	off := liveHeapOf(t, nil, 10)
	traced := liveHeapOf(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_TRACES_SAMPLER": "failures+traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0",
	}, 10)
	t.Logf("live heap per instance: tracing off %d B, tracing at 0%% with failures %d B", off, traced)
	if added := traced - off; added > 64<<10 {
		t.Errorf("tracing at 0%% keeps %d B more live heap than tracing off, want at most 64 KiB", added)
	}
}
