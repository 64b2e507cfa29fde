package telemetry

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard-gw/switchyard/config"
)

// Protocols accepted for OTLP export.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// DefaultMaxQueueSize is the span queue size when OTEL_BSP_MAX_QUEUE_SIZE
// is not set (the OpenTelemetry default).
const DefaultMaxQueueSize = 2048

// settings are the effective telemetry settings: the standard OTEL_*
// variables where set, the telemetry.* keys otherwise.
type settings struct {
	disabled bool

	// tracesEndpoint is the OTLP traces endpoint; empty means no trace
	// exporter (and no spans at all). tracesFromEnv says it came from an
	// OTEL_* variable, which the exporter then reads itself (with the
	// other OTEL_EXPORTER_OTLP_* variables such as headers and TLS).
	tracesEndpoint string
	tracesFromEnv  bool
	tracesProtocol string

	metricsEndpoint string
	metricsFromEnv  bool
	metricsProtocol string

	sampler     string // without the failures+ prefix
	samplerArg  float64
	failures    bool          // a failures+ sampler: keep interesting requests after the fact
	slow        time.Duration // telemetry.slow_threshold
	keepRate    float64       // telemetry.failure_traces_per_second
	maxQueue    int
	trustParent bool
	traceProbes bool
}

// resolve computes the effective settings from c and the environment
// (getenv). Errors name the variable or key and its value.
func resolve(c config.Telemetry, getenv func(string) string) (settings, error) {
	s := settings{
		disabled:    c.Disabled,
		sampler:     c.Sampler,
		samplerArg:  c.SamplerArg,
		maxQueue:    DefaultMaxQueueSize,
		trustParent: c.TrustIncomingTrace,
		traceProbes: c.TraceProbes,
		slow:        c.SlowThreshold,
		keepRate:    c.FailureTracesPerSecond,
	}
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		s.disabled = strings.EqualFold(v, "true")
	}

	generic := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	proto := c.Protocol
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); v != "" {
		proto = v
	}
	var err error
	if s.tracesEndpoint, s.tracesFromEnv, s.tracesProtocol, err = signal(c.Endpoint, generic, proto, getenv, "TRACES"); err != nil {
		return s, err
	}
	if s.metricsEndpoint, s.metricsFromEnv, s.metricsProtocol, err = signal(c.Endpoint, generic, proto, getenv, "METRICS"); err != nil {
		return s, err
	}

	samplerKey := "telemetry.sampler"
	if v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")); v != "" {
		s.sampler, samplerKey = v, "OTEL_TRACES_SAMPLER"
	}
	if v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return s, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: invalid value %q: want a number from 0 to 1", v)
		}
		s.samplerArg = f
	}
	if _, err := newSampler(s.sampler, s.samplerArg); err != nil {
		return s, fmt.Errorf("%s: invalid value %q: %w", samplerKey, s.sampler, err)
	}
	s.sampler, s.failures = strings.CutPrefix(s.sampler, config.FailuresSamplerPrefix)
	if v := strings.TrimSpace(getenv("OTEL_BSP_MAX_QUEUE_SIZE")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, fmt.Errorf("OTEL_BSP_MAX_QUEUE_SIZE: invalid value %q: want a positive integer", v)
		}
		s.maxQueue = n
	}
	return s, nil
}

// signal resolves one signal's endpoint and protocol: the signal-specific
// variable, then the generic one, then the telemetry.endpoint key.
func signal(cfgEndpoint, generic, proto string, getenv func(string) string, sig string) (endpoint string, fromEnv bool, protocol string, err error) {
	protoVar := "OTEL_EXPORTER_OTLP_PROTOCOL"
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + sig + "_PROTOCOL")); v != "" {
		proto, protoVar = v, "OTEL_EXPORTER_OTLP_"+sig+"_PROTOCOL"
	}
	switch proto {
	case ProtocolGRPC, ProtocolHTTP:
	default:
		return "", false, "", fmt.Errorf("%s: invalid value %q: want grpc or http/protobuf", protoVar, proto)
	}
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + sig + "_ENDPOINT")); v != "" {
		return v, true, proto, checkEndpoint("OTEL_EXPORTER_OTLP_"+sig+"_ENDPOINT", v)
	}
	if generic != "" {
		return generic, true, proto, checkEndpoint("OTEL_EXPORTER_OTLP_ENDPOINT", generic)
	}
	return cfgEndpoint, false, proto, nil // validated by config.Validate
}

func checkEndpoint(name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: invalid value %q: want a URL such as http://localhost:4317", name, v)
	}
	return nil
}

// newSampler builds the head sampler named as in OTEL_TRACES_SAMPLER; a
// failures+ prefix does not change it (the keeping after the fact is not a
// sampler).
func newSampler(name string, arg float64) (sdktrace.Sampler, error) {
	if arg < 0 || arg > 1 {
		return nil, fmt.Errorf("sampler argument %v is not from 0 to 1", arg)
	}
	switch strings.TrimPrefix(name, config.FailuresSamplerPrefix) {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(arg), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(arg)), nil
	default:
		return nil, errors.New("want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, optionally prefixed with failures+")
	}
}
