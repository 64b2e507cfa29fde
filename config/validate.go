package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
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

// Normalize expands shorthands (backends) and fills derived defaults such as
// instance IDs. It is called by Load before Validate.
func (c *Config) Normalize() error {
	if len(c.Backends) > 0 {
		if len(c.Services) > 0 || len(c.Routes) > 0 {
			return bad("backends", strings.Join(c.Backends, ","), "cannot be combined with services or routes")
		}
		svc := Service{Name: "default"}
		for i, b := range c.Backends {
			addr, err := backendAddress(b)
			if err != nil {
				return bad(fmt.Sprintf("backends[%d]", i), b, "%v", err)
			}
			svc.Instances = append(svc.Instances, Instance{ID: addr, Address: addr})
		}
		c.Services = []Service{svc}
		c.Routes = []Route{{PathPrefix: "/", Service: "default"}}
	}
	for i := range c.Services {
		for j := range c.Services[i].Instances {
			in := &c.Services[i].Instances[j]
			if in.ID == "" {
				in.ID = in.Address
			}
		}
	}
	for i := range c.Routes {
		if c.Routes[i].PathPrefix == "" {
			c.Routes[i].PathPrefix = "/"
		}
	}
	return nil
}

// backendAddress accepts "http://host:port", "host:port" and returns host:port.
func backendAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		if u.Scheme != "http" {
			return "", fmt.Errorf("scheme %q is not supported (use http)", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return "", errors.New("a path is not supported")
		}
		s = u.Host
	}
	return s, checkHostPort(s)
}

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

// Validate reports the first invalid key. It does not modify c.
func (c *Config) Validate() error {
	if err := checkListen(c.Listen); err != nil {
		return bad("listen", c.Listen, "%v", err)
	}
	if err := checkListen(c.Admin.Listen); err != nil {
		return bad("admin.listen", c.Admin.Listen, "%v", err)
	}
	if err := c.Health.validate("health"); err != nil {
		return err
	}
	if p := c.Health.PanicThreshold; p < 0 || p > 100 {
		return bad("health.panic_threshold", p, "want a percentage from 0 (off) to 100")
	}
	if err := c.Health.Passive.validate(); err != nil {
		return err
	}
	if err := c.LB.validate("lb", false); err != nil {
		return err
	}
	switch c.Health.Merge {
	case MergeBoth, MergeProbe, MergeConsul:
	default:
		return bad("health.merge", c.Health.Merge, "want one of both, probe, consul")
	}
	switch c.Discovery.Provider {
	case ProviderStatic:
	case ProviderConsul:
		if err := c.Discovery.Consul.validate(); err != nil {
			return err
		}
	default:
		return bad("discovery.provider", c.Discovery.Provider, "want static or consul")
	}

	names := make(map[string]bool, len(c.Services))
	for i, s := range c.Services {
		key := fmt.Sprintf("services[%d]", i)
		if s.Name == "" {
			return bad(key+".name", s.Name, "a service needs a name")
		}
		if names[s.Name] {
			return bad(key+".name", s.Name, "duplicate service name")
		}
		names[s.Name] = true
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
	}
	if c.Discovery.Provider == ProviderStatic && len(c.Services) == 0 {
		return bad("services", "", "no services: set services (or backends / SWITCHYARD_BACKENDS), or use discovery.provider consul")
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if !strings.HasPrefix(r.PathPrefix, "/") {
			return bad(key+".path_prefix", r.PathPrefix, "must start with /")
		}
		if strings.ContainsAny(r.Host, "/ ") {
			return bad(key+".host", r.Host, "want a plain host name")
		}
		if r.Service == "" {
			return bad(key+".service", r.Service, "a route needs a service")
		}
		// With Consul, services may be defined by the registry alone.
		if c.Discovery.Provider == ProviderStatic && !names[r.Service] {
			return bad(key+".service", r.Service, "unknown service (not in services)")
		}
	}
	if c.Proxy.Retries < 0 || c.Proxy.Retries > 10 {
		return bad("proxy.retries", c.Proxy.Retries, "want 0-10")
	}
	if _, err := ParseCIDRs(c.Proxy.TrustedProxies); err != nil {
		return bad("proxy.trusted_proxies", strings.Join(c.Proxy.TrustedProxies, ","), "%v", err)
	}
	for key, d := range map[string]time.Duration{
		"proxy.dial_timeout":            c.Proxy.DialTimeout,
		"proxy.response_header_timeout": c.Proxy.ResponseHeaderTimeout,
		"proxy.idle_conn_timeout":       c.Proxy.IdleConnTimeout,
		"server.read_header_timeout":    c.Server.ReadHeaderTimeout,
		"server.idle_timeout":           c.Server.IdleTimeout,
		"shutdown_timeout":              c.ShutdownTimeout,
	} {
		if d <= 0 {
			return bad(key, d, "must be positive")
		}
	}
	if c.Proxy.MaxBodyBytes < 0 {
		return bad("proxy.max_body_bytes", c.Proxy.MaxBodyBytes, "must not be negative (0 = no limit)")
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		return bad("server.tls_key_file", c.Server.TLSKeyFile, "server.tls_cert_file and server.tls_key_file go together")
	}
	if c.Server.ReadTimeout < 0 {
		return bad("server.read_timeout", c.Server.ReadTimeout, "must not be negative")
	}
	if c.Server.WriteTimeout < 0 {
		return bad("server.write_timeout", c.Server.WriteTimeout, "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", c.Log.Format, "want text or json")
	}
	return c.Telemetry.validate()
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
	switch t.Sampler {
	case "always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
	default:
		return bad("telemetry.sampler", t.Sampler, "want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio")
	}
	if t.SamplerArg < 0 || t.SamplerArg > 1 {
		return bad("telemetry.sampler_arg", t.SamplerArg, "want a ratio from 0 to 1")
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
	if _, err := ParseStatusRanges(h.ExpectedStatus); err != nil {
		return bad(prefix+".expected_status", h.ExpectedStatus, "%v", err)
	}
	if _, err := ParseJitter(h.Jitter); err != nil {
		return bad(prefix+".jitter", h.Jitter, "%v", err)
	}
	if h.SlowStart < 0 {
		return bad(prefix+".slow_start", h.SlowStart, "must not be negative (0 turns slow start off)")
	}
	return nil
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
	if (c.CertFile == "") != (c.KeyFile == "") {
		return bad("discovery.consul.cert_file", c.CertFile, "cert_file and key_file go together (key_file %q)", c.KeyFile)
	}
	return nil
}

// StatusRanges is a set of inclusive HTTP status ranges.
type StatusRanges [][2]int

// Contains reports whether code lies in one of the ranges.
func (r StatusRanges) Contains(code int) bool {
	for _, x := range r {
		if code >= x[0] && code <= x[1] {
			return true
		}
	}
	return false
}

// ParseStatusRanges parses "200-399", "200,204" or "200-299,404".
func ParseStatusRanges(s string) (StatusRanges, error) {
	var out StatusRanges
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return nil, errors.New(`want status codes or ranges such as "200-399" or "200,204"`)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				return nil, errors.New(`want status codes or ranges such as "200-399" or "200,204"`)
			}
		}
		if a < 100 || b > 599 || a > b {
			return nil, errors.New("status codes must be 100-599, low before high")
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

// ParseJitter parses "10%" (or "0.1") into a fraction in [0, 1).
func ParseJitter(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSuffix(s, "%"), 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New(`want a percentage such as "10%"`)
	}
	f /= scale
	if f < 0 || f >= 1 {
		return 0, errors.New("must be from 0% to under 100%")
	}
	return f, nil
}

// ParseCIDRs parses CIDRs or bare IPs (taken as a single address).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or IP", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
