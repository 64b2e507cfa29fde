// Package config defines Switchyard's typed configuration, its defaults and
// its validation. Loading (file, environment) lives in load.go.
package config

import (
	"time"
)

// Config is the whole gateway configuration. Durations are time.Duration;
// values with a syntax of their own (status sets, jitter, CIDRs, the log
// level) have types of their own (values.go), decoded once by Load. A
// Config returned by Load is valid and is never modified afterwards; the
// rest of the program reads its fields and parses nothing again.
type Config struct {
	// Listen is the proxy listener address.
	Listen string `mapstructure:"listen"`
	// Backends is the shorthand for one service "default" routed at "/".
	Backends []string `mapstructure:"backends"`

	Admin     Admin     `mapstructure:"admin"`
	Health    Health    `mapstructure:"health"`
	Discovery Discovery `mapstructure:"discovery"`
	Services  []Service `mapstructure:"services"`
	Routes    []Route   `mapstructure:"routes"`
	Proxy     Proxy     `mapstructure:"proxy"`
	LB        LB        `mapstructure:"lb"`
	Server    Server    `mapstructure:"server"`
	Telemetry Telemetry `mapstructure:"telemetry"`
	Log       Log       `mapstructure:"log"`

	// ShutdownTimeout bounds the graceful drain of in-flight requests.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// Admin configures the admin listener (/healthz, /readyz, /api/v1/services).
type Admin struct {
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin listener.
	Pprof bool `mapstructure:"pprof"`
}

// Health holds active-probe settings. At the top level they are the defaults
// for every service; under services[].health every field is optional.
type Health struct {
	Path               string        `mapstructure:"path"`
	Interval           time.Duration `mapstructure:"interval"`
	Timeout            time.Duration `mapstructure:"timeout"`
	HealthyThreshold   int           `mapstructure:"healthy_threshold"`
	UnhealthyThreshold int           `mapstructure:"unhealthy_threshold"`
	// ExpectedStatus is the set of probe answers that pass.
	ExpectedStatus StatusSet `mapstructure:"expected_status"`
	// Jitter moves each probe by up to this fraction of Interval.
	Jitter Jitter `mapstructure:"jitter"`
	// Type is the probe: http, or grpc (grpc.health.v1.Health/Check);
	// empty means grpc for grpc services and http for the others.
	Type string `mapstructure:"type"`
	// GRPCService is the service name a grpc probe asks about; empty asks
	// about the server as a whole.
	GRPCService string `mapstructure:"grpc_service"`
	// Merge says how registry health and probes combine: both, probe, consul.
	Merge string `mapstructure:"merge"`
	// PanicThreshold (percent, 0 = off): when fewer than this share of a
	// service's instances is routable, route to all of them.
	PanicThreshold int `mapstructure:"panic_threshold"`
	// Passive ejects instances that fail real requests.
	Passive Passive `mapstructure:"passive"`
	// MaxConcurrentProbes bounds the probes in flight at once, whatever the
	// number of instances; a probe waiting for a slot starts late, it is
	// not skipped. Fixed at start.
	MaxConcurrentProbes int `mapstructure:"max_concurrent_probes"`
	// SlowStart (0 = off) ramps the weight of an instance that joins
	// rotation from 10% to full over this window (docs/balancing.md).
	SlowStart time.Duration `mapstructure:"slow_start"`
}

// Passive configures outlier ejection from request outcomes: connection
// errors and 502/503/504 count as failures, 4xx never do.
type Passive struct {
	// ConsecutiveFailures ejects an instance after this many failed
	// requests in a row; 0 turns passive health off.
	ConsecutiveFailures int `mapstructure:"consecutive_failures"`
	// BaseEjectionTime is the first ejection's length; the n-th ejection
	// in a row lasts n times as long, up to MaxEjectionTime.
	BaseEjectionTime time.Duration `mapstructure:"base_ejection_time"`
	MaxEjectionTime  time.Duration `mapstructure:"max_ejection_time"`
	// MaxEjectionPercent caps the share of a service's instances ejected
	// at once.
	MaxEjectionPercent int `mapstructure:"max_ejection_percent"`
}

// HealthOverride is a per-service health section: nil fields inherit.
type HealthOverride struct {
	Path               *string        `mapstructure:"path"`
	Interval           *time.Duration `mapstructure:"interval"`
	Timeout            *time.Duration `mapstructure:"timeout"`
	HealthyThreshold   *int           `mapstructure:"healthy_threshold"`
	UnhealthyThreshold *int           `mapstructure:"unhealthy_threshold"`
	ExpectedStatus     *StatusSet     `mapstructure:"expected_status"`
	Jitter             *Jitter        `mapstructure:"jitter"`
	Type               *string        `mapstructure:"type"`
	GRPCService        *string        `mapstructure:"grpc_service"`
	SlowStart          *time.Duration `mapstructure:"slow_start"`
}

// Apply returns base with the fields set in o replaced. A nil o returns base.
func (o *HealthOverride) Apply(base Health) Health {
	if o == nil {
		return base
	}
	setFrom(&base.Path, o.Path)
	setFrom(&base.Interval, o.Interval)
	setFrom(&base.Timeout, o.Timeout)
	setFrom(&base.HealthyThreshold, o.HealthyThreshold)
	setFrom(&base.UnhealthyThreshold, o.UnhealthyThreshold)
	setFrom(&base.ExpectedStatus, o.ExpectedStatus)
	setFrom(&base.Jitter, o.Jitter)
	setFrom(&base.Type, o.Type)
	setFrom(&base.GRPCService, o.GRPCService)
	setFrom(&base.SlowStart, o.SlowStart)
	return base
}

// Over returns an override with the fields set in o taking precedence over
// those in under; the fields neither sets stay unset. Neither argument is
// modified; nil means "sets nothing".
func (o *HealthOverride) Over(under *HealthOverride) *HealthOverride {
	if o == nil {
		return under
	}
	if under == nil {
		return o
	}
	m := *under
	prefer(&m.Path, o.Path)
	prefer(&m.Interval, o.Interval)
	prefer(&m.Timeout, o.Timeout)
	prefer(&m.HealthyThreshold, o.HealthyThreshold)
	prefer(&m.UnhealthyThreshold, o.UnhealthyThreshold)
	prefer(&m.ExpectedStatus, o.ExpectedStatus)
	prefer(&m.Jitter, o.Jitter)
	prefer(&m.Type, o.Type)
	prefer(&m.GRPCService, o.GRPCService)
	prefer(&m.SlowStart, o.SlowStart)
	return &m
}

// setFrom sets *dst to *v when v is set.
func setFrom[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// prefer points *dst at v when v is set.
func prefer[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// Service is a statically configured service. With the consul provider its
// instances come from Consul and Instances must be empty.
type Service struct {
	Name      string          `mapstructure:"name"`
	Instances []Instance      `mapstructure:"instances"`
	Health    *HealthOverride `mapstructure:"health"`
	// Protocol and TLS say how instances are spoken to (upstream.go).
	Protocol string      `mapstructure:"protocol"`
	TLS      UpstreamTLS `mapstructure:"tls"`
	// GRPC holds settings for grpc services (grpc.go).
	GRPC GRPC `mapstructure:"grpc"`
	// LB overrides the top-level lb section for this service.
	LB LB `mapstructure:"lb"`
}

// Instance is one static backend. ID defaults to Address.
type Instance struct {
	ID      string `mapstructure:"id"`
	Address string `mapstructure:"address"`
	// Weight is the instance's relative share of traffic (nil: 1); 0
	// keeps it out of traffic (drain).
	Weight *int `mapstructure:"weight"`
}

// LB chooses how requests are spread over a service's instances. Under
// services[] an empty Policy inherits the top-level one.
type LB struct {
	// Policy is round_robin (weighted) or least_request (power of two
	// random choices by requests in flight).
	Policy string `mapstructure:"policy"`
}

// Route maps an exact host (optional) and a path prefix to a service.
type Route struct {
	Host        string `mapstructure:"host"`
	PathPrefix  string `mapstructure:"path_prefix"`
	Service     string `mapstructure:"service"`
	StripPrefix bool   `mapstructure:"strip_prefix"`
}

// Discovery selects where instances come from.
type Discovery struct {
	// Provider is "static" (config file) or "consul".
	Provider string `mapstructure:"provider"`
	Consul   Consul `mapstructure:"consul"`
}

// Consul configures the Consul provider. Empty Address and Token fall back
// to CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, as for other Consul tools.
type Consul struct {
	Address    string `mapstructure:"address"`
	Scheme     string `mapstructure:"scheme"`
	Token      string `mapstructure:"token"`
	Datacenter string `mapstructure:"datacenter"`
	CAFile     string `mapstructure:"ca_file"`
	CertFile   string `mapstructure:"cert_file"`
	KeyFile    string `mapstructure:"key_file"`
	// TagPrefix prefixes every tag Switchyard reads ("switchyard").
	TagPrefix string `mapstructure:"tag_prefix"`
	// AcceptWarning counts Consul "warning" as passing.
	AcceptWarning bool `mapstructure:"accept_warning"`
	// WaitTime is the blocking-query wait.
	WaitTime time.Duration `mapstructure:"wait_time"`
	// MaxBackoff caps the exponential back-off after errors.
	MaxBackoff time.Duration `mapstructure:"max_backoff"`
	// MaxConnections caps the TCP connections to the agent at any catalog
	// size (at least 3: two change detectors and one for fetching).
	MaxConnections int `mapstructure:"max_connections"`
}

// Proxy configures the upstream side.
type Proxy struct {
	// Retries is the number of extra attempts, each on another instance,
	// after an attempt that failed before a response: a dial error (nothing
	// was sent) for any method whose body was not read yet; any other
	// failure (a reset, an early EOF) only for GET, HEAD, OPTIONS and TRACE
	// without a body. Timeouts are not retried.
	Retries int `mapstructure:"retries"`
	// TrustedProxies are the peers whose X-Forwarded-* and Forwarded
	// headers are kept.
	TrustedProxies CIDRs `mapstructure:"trusted_proxies"`
	// DialTimeout bounds TCP connect to an instance.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for an instance's response
	// headers after the request was written; exceeding it answers 504.
	ResponseHeaderTimeout time.Duration `mapstructure:"response_header_timeout"`
	// IdleConnTimeout closes idle upstream keep-alive connections.
	IdleConnTimeout time.Duration `mapstructure:"idle_conn_timeout"`
	// MaxIdleConnsPerHost sizes the per-instance keep-alive pool.
	MaxIdleConnsPerHost int `mapstructure:"max_idle_conns_per_host"`
	// MaxBodyBytes rejects larger request bodies with 413; 0 = no limit.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
}

// Server configures the client-facing listener.
type Server struct {
	// ReadHeaderTimeout cuts clients that trickle request headers (slowloris).
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a request body (slow uploads get 408); the
	// deadline is lifted once the body is read, so streams are unaffected.
	// 0 leaves bodies unbounded.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds writing a response; 0 keeps streams (SSE) open.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout closes idle client keep-alive connections.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxHeaderBytes bounds request headers; larger ones get 431.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// H2C accepts cleartext HTTP/2 with prior knowledge on the proxy
	// listener (HTTP/1.1 keeps working).
	H2C bool `mapstructure:"h2c"`
	// TLSCertFile and TLSKeyFile serve the proxy listener over TLS
	// (HTTP/2 and HTTP/1.1 by ALPN).
	TLSCertFile string `mapstructure:"tls_cert_file"`
	TLSKeyFile  string `mapstructure:"tls_key_file"`
}

// Telemetry configures OpenTelemetry. Standard OTEL_* variables take
// precedence where both are set (docs/telemetry.md lists them).
type Telemetry struct {
	// ServiceName is service.name (OTEL_SERVICE_NAME).
	ServiceName string `mapstructure:"service_name"`
	// Endpoint is the OTLP collector URL, e.g. http://localhost:4317
	// (OTEL_EXPORTER_OTLP_ENDPOINT). Empty: no traces, no OTLP metrics;
	// /metrics on the admin listener works either way.
	Endpoint string `mapstructure:"endpoint"`
	// Protocol is grpc or http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL).
	Protocol string `mapstructure:"protocol"`
	// SpanExporter is direct (the gateway writes OTLP itself) or sdk
	// (the OpenTelemetry Go SDK's OTLP exporter).
	SpanExporter string `mapstructure:"span_exporter"`
	// Sampler and SamplerArg as OTEL_TRACES_SAMPLER and _ARG. A sampler
	// name prefixed with "failures+" (e.g. failures+traceidratio) also
	// keeps, after the fact, requests that were not sampled but ended
	// interesting (5xx, retry, ejection, panic, no healthy instance, slow).
	Sampler    string  `mapstructure:"sampler"`
	SamplerArg float64 `mapstructure:"sampler_arg"`
	// SlowThreshold: with a failures+ sampler, a request lasting longer is
	// kept. Zero: duration alone never keeps one.
	SlowThreshold time.Duration `mapstructure:"slow_threshold"`
	// FailureTracesPerSecond caps the traces kept after the fact, shared
	// fairly among routes.
	FailureTracesPerSecond float64 `mapstructure:"failure_traces_per_second"`
	// UIURL is the base URL of a Jaeger UI (e.g. http://localhost:16686);
	// the admin API's recent traces link to it. Empty: no links.
	UIURL string `mapstructure:"ui_url"`
	// TrustIncomingTrace continues a client's traceparent; when false every
	// request starts a new trace (linked to the client's span).
	TrustIncomingTrace bool `mapstructure:"trust_incoming_trace"`
	// TraceProbes records a span per health probe.
	TraceProbes bool `mapstructure:"trace_probes"`
	// Disabled turns traces and metrics off (OTEL_SDK_DISABLED).
	Disabled bool `mapstructure:"disabled"`
}

// FailuresSamplerPrefix, before a sampler name, turns on failure-biased
// sampling (docs/telemetry.md).
const FailuresSamplerPrefix = "failures+"

// Log configures slog output.
type Log struct {
	Level LogLevel `mapstructure:"level"`
	// Format is text or json.
	Format string `mapstructure:"format"`
	// Access writes one JSON line per request to stdout.
	Access bool `mapstructure:"access"`
}

// Default returns the configuration used when nothing else is given.
func Default() Config {
	return Config{
		Listen: "0.0.0.0:8080",
		Admin:  Admin{Listen: "127.0.0.1:9901"},
		Health: Health{
			Path:               "/health",
			Interval:           5 * time.Second,
			Timeout:            time.Second,
			HealthyThreshold:   2,
			UnhealthyThreshold: 2,
			ExpectedStatus:     Statuses(200, 399),
			Jitter:             0.1,
			Merge:              MergeBoth,
			Passive: Passive{
				ConsecutiveFailures: 5,
				BaseEjectionTime:    30 * time.Second,
				MaxEjectionTime:     5 * time.Minute,
				MaxEjectionPercent:  50,
			},
			MaxConcurrentProbes: 256,
		},
		Discovery: Discovery{
			Provider: ProviderStatic,
			Consul: Consul{
				TagPrefix:      "switchyard",
				WaitTime:       5 * time.Minute,
				MaxBackoff:     10 * time.Second,
				MaxConnections: 4,
			},
		},
		Proxy: Proxy{
			Retries:               2,
			DialTimeout:           2 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   256,
		},
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    1 << 20,
		},
		Telemetry: Telemetry{
			ServiceName:            "switchyard",
			Protocol:               "grpc",
			SpanExporter:           "direct",
			Sampler:                "parentbased_always_on",
			SamplerArg:             1,
			TrustIncomingTrace:     true,
			SlowThreshold:          time.Second,
			FailureTracesPerSecond: 100,
		},
		LB:              LB{Policy: PolicyRoundRobin},
		Log:             Log{Level: LevelInfo, Format: "text"},
		ShutdownTimeout: 15 * time.Second,
	}
}

// Merge policies for Health.Merge.
const (
	MergeBoth   = "both"
	MergeProbe  = "probe"
	MergeConsul = "consul"
)

// Discovery providers.
const (
	ProviderStatic = "static"
	ProviderConsul = "consul"
)

// Balancing policies for LB.Policy.
const (
	PolicyRoundRobin   = "round_robin"
	PolicyLeastRequest = "least_request"
)
