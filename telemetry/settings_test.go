package telemetry

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

func TestResolve(t *testing.T) {
	withEndpoint := config.Default().Telemetry
	withEndpoint.Endpoint = "http://collector:4317"
	withEndpoint.Sampler = "traceidratio"
	withEndpoint.SamplerArg = 0.5

	for _, tc := range []struct {
		name    string
		cfg     config.Telemetry
		env     map[string]string
		check   func(settings) bool
		wantErr string
	}{
		{
			name:  "no endpoint anywhere means no trace exporter",
			cfg:   config.Default().Telemetry,
			check: func(s settings) bool { return s.tracesEndpoint == "" && s.metricsEndpoint == "" && !s.disabled },
		},
		{
			name: "the config endpoint is used when no variable is set",
			cfg:  withEndpoint,
			check: func(s settings) bool {
				return s.tracesEndpoint == "http://collector:4317" && !s.tracesFromEnv && s.tracesProtocol == "grpc" && s.metricsEndpoint == "http://collector:4317"
			},
		},
		{
			name: "OTEL_EXPORTER_OTLP_ENDPOINT wins over the config endpoint",
			cfg:  withEndpoint,
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			check: func(s settings) bool {
				return s.tracesEndpoint == "http://env:4318" && s.tracesFromEnv && s.tracesProtocol == "http/protobuf"
			},
		},
		{
			name: "the traces endpoint variable wins over the generic one for traces only",
			cfg:  config.Default().Telemetry,
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
			check: func(s settings) bool {
				return s.tracesEndpoint == "http://traces:4318/v1/traces" && s.tracesProtocol == "http/protobuf" &&
					s.metricsEndpoint == "http://env:4317" && s.metricsProtocol == "grpc"
			},
		},
		{
			name:  "a traces-only variable leaves metrics without OTLP",
			cfg:   config.Default().Telemetry,
			env:   map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"},
			check: func(s settings) bool { return s.tracesEndpoint != "" && s.metricsEndpoint == "" },
		},
		{
			name:  "sampler variables win over the keys",
			cfg:   withEndpoint,
			env:   map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
			check: func(s settings) bool { return s.sampler == "parentbased_traceidratio" && s.samplerArg == 0.01 },
		},
		{
			name:  "the sampler key is used without variables",
			cfg:   withEndpoint,
			check: func(s settings) bool { return s.sampler == "traceidratio" && s.samplerArg == 0.5 },
		},
		{
			name:  "a failures+ prefix keeps the head sampler and turns on keeping after the fact",
			cfg:   withEndpoint,
			env:   map[string]string{"OTEL_TRACES_SAMPLER": "failures+parentbased_traceidratio"},
			check: func(s settings) bool { return s.sampler == "parentbased_traceidratio" && s.failures },
		},
		{
			name:  "OTEL_SDK_DISABLED=true disables",
			cfg:   withEndpoint,
			env:   map[string]string{"OTEL_SDK_DISABLED": "TRUE"},
			check: func(s settings) bool { return s.disabled },
		},
		{
			name: "OTEL_SDK_DISABLED=false overrides telemetry.disabled",
			cfg: func() config.Telemetry {
				c := config.Default().Telemetry
				c.Disabled = true
				return c
			}(),
			env:   map[string]string{"OTEL_SDK_DISABLED": "false"},
			check: func(s settings) bool { return !s.disabled },
		},
		{
			name:  "OTEL_BSP_MAX_QUEUE_SIZE sizes the span queue",
			cfg:   config.Default().Telemetry,
			env:   map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "64"},
			check: func(s settings) bool { return s.maxQueue == 64 },
		},
		{
			name:    "an unknown protocol names the variable",
			cfg:     config.Default().Telemetry,
			env:     map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL: invalid value "http/json"`,
		},
		{
			name:    "an endpoint without scheme names the variable",
			cfg:     config.Default().Telemetry,
			env:     map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
			wantErr: `OTEL_EXPORTER_OTLP_ENDPOINT: invalid value "collector:4317"`,
		},
		{
			name:    "an unknown sampler names the variable",
			cfg:     config.Default().Telemetry,
			env:     map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
			wantErr: `OTEL_TRACES_SAMPLER: invalid value "jaeger_remote"`,
		},
		{
			name:    "a sampler argument out of range names the variable",
			cfg:     config.Default().Telemetry,
			env:     map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"},
			wantErr: `OTEL_TRACES_SAMPLER_ARG: invalid value "2"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolve(tc.cfg, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Errorf("unexpected settings %+v", s)
			}
		})
	}
}

func TestConfigValidatesTelemetryKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*config.Telemetry)
		wantKey string
	}{
		{"an endpoint needs a scheme", func(c *config.Telemetry) { c.Endpoint = "localhost:4317" }, "telemetry.endpoint"},
		{"the protocol is grpc or http/protobuf", func(c *config.Telemetry) { c.Protocol = "udp" }, "telemetry.protocol"},
		{"the span exporter is direct or sdk", func(c *config.Telemetry) { c.SpanExporter = "fast" }, "telemetry.span_exporter"},
		{"the sampler is a standard name", func(c *config.Telemetry) { c.Sampler = "sometimes" }, "telemetry.sampler"},
		{"a failures+ prefix needs a standard name after it", func(c *config.Telemetry) { c.Sampler = "failures+sometimes" }, "telemetry.sampler"},
		{"the slow threshold is not negative", func(c *config.Telemetry) { c.SlowThreshold = -time.Second }, "telemetry.slow_threshold"},
		{"the failure trace rate is positive", func(c *config.Telemetry) { c.FailureTracesPerSecond = 0 }, "telemetry.failure_traces_per_second"},
		{"the sampler argument is a ratio", func(c *config.Telemetry) { c.SamplerArg = 1.5 }, "telemetry.sampler_arg"},
		{"the service name is not empty", func(c *config.Telemetry) { c.ServiceName = " " }, "telemetry.service_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			c.Backends = []string{"127.0.0.1:9001"}
			if err := c.Normalize(); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("default config invalid: %v", err)
			}
			tc.mod(&c.Telemetry)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantKey+":") {
				t.Errorf("error %v, want one naming %s", err, tc.wantKey)
			}
		})
	}
}
