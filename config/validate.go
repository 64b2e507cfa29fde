package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FieldError names the configuration key and the value that is wrong.
type FieldError struct {
	Key   string
	Value any
	Msg   string
}

func (e *FieldError) Error() string {
	if v := fmt.Sprint(e.Value); v == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: invalid value %q: %s", e.Key, fmt.Sprint(e.Value), e.Msg)
}

func bad(key string, value any, format string, args ...any) error {
	return &FieldError{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid key, naming it and its value. It does
// not modify c. Load calls it after Normalize; a Config built in code should
// be validated the same way before use.
func (c *Config) Validate() error {
	for _, check := range []func() error{
		c.validateListeners,
		c.validateHealth,
		c.validateDiscovery,
		c.validateServicesAndRoutes,
		c.Proxy.validate,
		c.Server.validate,
		c.validateShutdownAndLog,
		c.Telemetry.validate,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateListeners() error {
	if err := checkListen(c.Listen); err != nil {
		return bad("listen", c.Listen, "%v", err)
	}
	if err := checkListen(c.Admin.Listen); err != nil {
		return bad("admin.listen", c.Admin.Listen, "%v", err)
	}
	return nil
}

func (c *Config) validateHealth() error {
	if err := c.Health.validate("health"); err != nil {
		return err
	}
	if p := c.Health.PanicThreshold; p < 0 || p > 100 {
		return bad("health.panic_threshold", p, "want a percentage from 0 (off) to 100")
	}
	if n := c.Health.MaxConcurrentProbes; n < 1 {
		return bad("health.max_concurrent_probes", n, "must be at least 1")
	}
	if err := c.Health.Passive.validate(); err != nil {
		return err
	}
	if err := c.LB.validate("lb", false); err != nil {
		return err
	}
	switch c.Health.Merge {
	case MergeBoth, MergeProbe, MergeConsul:
		return nil
	default:
		return bad("health.merge", c.Health.Merge, "want one of both, probe, consul")
	}
}

func (c *Config) validateDiscovery() error {
	switch c.Discovery.Provider {
	case ProviderStatic:
		return nil
	case ProviderConsul:
		return c.Discovery.Consul.validate()
	default:
		return bad("discovery.provider", c.Discovery.Provider, "want static or consul")
	}
}

// validateServicesAndRoutes checks services, then that every route names
// a known service (with Consul, the registry may define services alone).
func (c *Config) validateServicesAndRoutes() error {
	names := make(map[string]bool, len(c.Services))
	for i, s := range c.Services {
		key := fmt.Sprintf("services[%d]", i)
		if err := c.validateService(key, s, names); err != nil {
			return err
		}
		names[s.Name] = true
	}
	if c.Discovery.Provider == ProviderStatic && len(c.Services) == 0 {
		return bad("services", "", "no services: set services (or backends / SWITCHYARD_BACKENDS), or use discovery.provider consul")
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if err := r.validate(key); err != nil {
			return err
		}
		if c.Discovery.Provider == ProviderStatic && !names[r.Service] {
			return bad(key+".service", r.Service, "unknown service (not in services)")
		}
	}
	return nil
}

// validateService checks one service; seen holds the names before it.
func (c *Config) validateService(key string, s Service, seen map[string]bool) error {
	if s.Name == "" {
		return bad(key+".name", s.Name, "a service needs a name")
	}
	if seen[s.Name] {
		return bad(key+".name", s.Name, "duplicate service name")
	}
	if c.Discovery.Provider == ProviderConsul && len(s.Instances) > 0 {
		return bad(key+".instances", len(s.Instances), "static instances cannot be used with discovery.provider consul")
	}
	ids := make(map[string]bool, len(s.Instances))
	for j, in := range s.Instances {
		ikey := fmt.Sprintf("%s.instances[%d]", key, j)
		if err := checkHostPort(in.Address); err != nil {
			return bad(ikey+".address", in.Address, "%v", err)
		}
		if ids[in.ID] {
			return bad(ikey+".id", in.ID, "duplicate instance id in service %q", s.Name)
		}
		ids[in.ID] = true
		if in.Weight != nil && (*in.Weight < 0 || *in.Weight > MaxWeight) {
			return bad(ikey+".weight", *in.Weight, "want 0 (drain) to %d", MaxWeight)
		}
	}
	if err := s.LB.validate(key+".lb", true); err != nil {
		return err
	}
	if err := s.Health.Apply(c.Health).validate(key + ".health"); err != nil {
		return err
	}
	return s.Upstream().validate(key, c.Discovery.Provider == ProviderConsul)
}

func (r Route) validate(key string) error {
	if !strings.HasPrefix(r.PathPrefix, "/") {
		return bad(key+".path_prefix", r.PathPrefix, "must start with /")
	}
	if strings.ContainsAny(r.Host, "/ ") {
		return bad(key+".host", r.Host, "want a plain host name")
	}
	if r.Service == "" {
		return bad(key+".service", r.Service, "a route needs a service")
	}
	return nil
}

func (p Proxy) validate() error {
	if p.Retries < 0 || p.Retries > 10 {
		return bad("proxy.retries", p.Retries, "want 0-10")
	}
	if err := positive("proxy.dial_timeout", p.DialTimeout); err != nil {
		return err
	}
	if err := positive("proxy.response_header_timeout", p.ResponseHeaderTimeout); err != nil {
		return err
	}
	if err := positive("proxy.idle_conn_timeout", p.IdleConnTimeout); err != nil {
		return err
	}
	if p.MaxBodyBytes < 0 {
		return bad("proxy.max_body_bytes", p.MaxBodyBytes, "must not be negative (0 = no limit)")
	}
	return nil
}

func (s Server) validate() error {
	if err := positive("server.read_header_timeout", s.ReadHeaderTimeout); err != nil {
		return err
	}
	if err := positive("server.idle_timeout", s.IdleTimeout); err != nil {
		return err
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		return bad("server.tls_key_file", s.TLSKeyFile, "server.tls_cert_file and server.tls_key_file go together")
	}
	if s.ReadTimeout < 0 {
		return bad("server.read_timeout", s.ReadTimeout, "must not be negative")
	}
	if s.WriteTimeout < 0 {
		return bad("server.write_timeout", s.WriteTimeout, "must not be negative")
	}
	return nil
}

func (c *Config) validateShutdownAndLog() error {
	if err := positive("shutdown_timeout", c.ShutdownTimeout); err != nil {
		return err
	}
	switch c.Log.Format {
	case "text", "json":
		return nil
	default:
		return bad("log.format", c.Log.Format, "want text or json")
	}
}

// checkHostPort accepts host:port with a non-empty host and a port 1-65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("missing host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return errors.New("port must be 1-65535")
	}
	return nil
}

// checkListen accepts a listen address: the host may be empty, port 0 picks one.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port (host may be empty)")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return errors.New("port must be 0-65535")
	}
	return nil
}

func positive(key string, d time.Duration) error {
	if d <= 0 {
		return bad(key, d, "must be positive")
	}
	return nil
}

func (t Telemetry) validate() error {
	if strings.TrimSpace(t.ServiceName) == "" {
		return bad("telemetry.service_name", t.ServiceName, "must not be empty")
	}
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("telemetry.endpoint", t.Endpoint, "want a URL such as http://localhost:4317 (http means no TLS)")
		}
	}
	switch t.Protocol {
	case "grpc", "http/protobuf":
	default:
		return bad("telemetry.protocol", t.Protocol, "want grpc or http/protobuf")
	}
	switch t.SpanExporter {
	case "direct", "sdk":
	default:
		return bad("telemetry.span_exporter", t.SpanExporter, "want direct or sdk")
	}
	switch strings.TrimPrefix(t.Sampler, FailuresSamplerPrefix) {
	case "always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
	default:
		return bad("telemetry.sampler", t.Sampler, "want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, optionally prefixed with failures+")
	}
	if t.SamplerArg < 0 || t.SamplerArg > 1 {
		return bad("telemetry.sampler_arg", t.SamplerArg, "want a ratio from 0 to 1")
	}
	if t.SlowThreshold < 0 {
		return bad("telemetry.slow_threshold", t.SlowThreshold, "must not be negative (0: off)")
	}
	if t.UIURL != "" {
		u, err := url.Parse(t.UIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("telemetry.ui_url", t.UIURL, "want a URL such as http://localhost:16686")
		}
	}
	if t.FailureTracesPerSecond <= 0 {
		return bad("telemetry.failure_traces_per_second", t.FailureTracesPerSecond, "must be positive")
	}
	return nil
}

func (h Health) validate(prefix string) error {
	if !strings.HasPrefix(h.Path, "/") {
		return bad(prefix+".path", h.Path, "must start with /")
	}
	if h.Interval <= 0 {
		return bad(prefix+".interval", h.Interval, "must be positive")
	}
	if h.Timeout <= 0 {
		return bad(prefix+".timeout", h.Timeout, "must be positive")
	}
	if h.HealthyThreshold < 1 {
		return bad(prefix+".healthy_threshold", h.HealthyThreshold, "must be at least 1")
	}
	if h.UnhealthyThreshold < 1 {
		return bad(prefix+".unhealthy_threshold", h.UnhealthyThreshold, "must be at least 1")
	}
	if h.ExpectedStatus.IsEmpty() {
		return bad(prefix+".expected_status", "", "must contain at least one status code")
	}
	if err := h.Jitter.check(); err != nil {
		return bad(prefix+".jitter", h.Jitter, "%v", err)
	}
	if h.SlowStart < 0 {
		return bad(prefix+".slow_start", h.SlowStart, "must not be negative (0 turns slow start off)")
	}
	return validateProbeType(prefix+".type", h.Type)
}

// MaxWeight caps instance weights, from the config file and the registry.
const MaxWeight = 10000

// validate checks an lb section; under services[] (inherit) the policy may
// be empty.
func (l LB) validate(prefix string, inherit bool) error {
	if l.Policy == "" && inherit {
		return nil
	}
	if err := CheckPolicy(l.Policy); err != nil {
		return bad(prefix+".policy", l.Policy, "%v", err)
	}
	return nil
}

// CheckPolicy reports whether p names a balancing policy.
func CheckPolicy(p string) error {
	switch p {
	case PolicyRoundRobin, PolicyLeastRequest:
		return nil
	}
	return fmt.Errorf("want %s or %s", PolicyRoundRobin, PolicyLeastRequest)
}

func (p Passive) validate() error {
	if p.ConsecutiveFailures < 0 {
		return bad("health.passive.consecutive_failures", p.ConsecutiveFailures, "must not be negative (0 turns passive health off)")
	}
	if p.BaseEjectionTime <= 0 {
		return bad("health.passive.base_ejection_time", p.BaseEjectionTime, "must be positive")
	}
	if p.MaxEjectionTime < p.BaseEjectionTime {
		return bad("health.passive.max_ejection_time", p.MaxEjectionTime, "must be at least base_ejection_time")
	}
	if p.MaxEjectionPercent < 0 || p.MaxEjectionPercent > 100 {
		return bad("health.passive.max_ejection_percent", p.MaxEjectionPercent, "want 0-100")
	}
	return nil
}

func (c Consul) validate() error {
	switch c.Scheme {
	case "", "http", "https":
	default:
		return bad("discovery.consul.scheme", c.Scheme, "want http or https")
	}
	if c.TagPrefix == "" || strings.ContainsAny(c.TagPrefix, "= ") {
		return bad("discovery.consul.tag_prefix", c.TagPrefix, "want a non-empty word without '=' or spaces")
	}
	if c.WaitTime < time.Second || c.WaitTime > 10*time.Minute {
		return bad("discovery.consul.wait_time", c.WaitTime, "want 1s-10m")
	}
	if c.MaxBackoff <= 0 {
		return bad("discovery.consul.max_backoff", c.MaxBackoff, "must be positive")
	}
	if c.MaxConnections < 3 || c.MaxConnections > 64 {
		return bad("discovery.consul.max_connections", c.MaxConnections, "want 3-64 (two change detectors and at least one fetch connection)")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return bad("discovery.consul.cert_file", c.CertFile, "cert_file and key_file go together (key_file %q)", c.KeyFile)
	}
	return nil
}
