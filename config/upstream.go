package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Upstream protocols: how the gateway speaks to a service's instances.
const (
	// ProtocolHTTP is HTTP/1.1 in cleartext (the default; "" means it too).
	ProtocolHTTP = "http"
	// ProtocolH2C is HTTP/2 in cleartext with prior knowledge.
	ProtocolH2C = "h2c"
	// ProtocolHTTPS is TLS with HTTP/2 or HTTP/1.1, as ALPN decides.
	ProtocolHTTPS = "https"
	// ProtocolGRPC is HTTP/2: h2c, or TLS with ALPN h2 when tls.enabled.
	ProtocolGRPC = "grpc"
)

// Probe types for Health.Type.
const (
	// ProbeAuto (empty) probes grpc services with ProbeGRPC and every
	// other service with ProbeHTTP.
	ProbeAuto = ""
	ProbeHTTP = "http"
	// ProbeGRPC calls grpc.health.v1.Health/Check; SERVING passes.
	ProbeGRPC = "grpc"
)

// Upstream is how the gateway speaks to one service's instances: its
// protocol and, for https and grpc with TLS, the TLS settings. The zero
// value is HTTP/1.1 in cleartext. In the config file these are the keys
// protocol and tls of a services[] entry; Consul tags may set some of them
// (discovery/consul_upstream.go), and the config file wins field by field.
type Upstream struct {
	Protocol string
	TLS      UpstreamTLS
	GRPC     GRPC
}

// UpstreamTLS configures TLS to a service's instances. Empty fields mean
// Go's defaults: the system roots, no client certificate, the instance's
// host as server name, TLS 1.2 at least.
type UpstreamTLS struct {
	// Enabled selects TLS for grpc services (default: h2c). https always
	// uses TLS; http and h2c never do. Nil means unset.
	Enabled *bool `mapstructure:"enabled"`
	// CAFile is a PEM bundle that replaces the system roots.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the client certificate for mTLS.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName is the name the certificate must carry and the SNI sent;
	// empty: the instance's host.
	ServerName string `mapstructure:"server_name"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `mapstructure:"min_version"`
	// InsecureSkipVerify accepts any certificate. It can only be set in the
	// config file, never by tags, and is logged as a warning.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Upstream returns the upstream settings of the service section.
func (s Service) Upstream() Upstream {
	return Upstream{Protocol: s.Protocol, TLS: s.TLS, GRPC: s.GRPC}
}

// Over returns u with the fields it leaves unset taken from under: the
// config file (u) wins over tags (under) field by field, as for health.
// InsecureSkipVerify is never taken from under.
func (u Upstream) Over(under Upstream) Upstream {
	if u.Protocol == "" {
		u.Protocol = under.Protocol
	}
	if u.GRPC.IdempotentMethods == nil {
		u.GRPC.IdempotentMethods = under.GRPC.IdempotentMethods
	}
	t := &u.TLS
	if t.Enabled == nil {
		t.Enabled = under.TLS.Enabled
	}
	for _, f := range []struct{ dst, src *string }{
		{&t.CAFile, &under.TLS.CAFile},
		{&t.CertFile, &under.TLS.CertFile},
		{&t.KeyFile, &under.TLS.KeyFile},
		{&t.ServerName, &under.TLS.ServerName},
		{&t.MinVersion, &under.TLS.MinVersion},
	} {
		if *f.dst == "" {
			*f.dst = *f.src
		}
	}
	return u
}

// Proto returns the protocol with the default applied: never "".
func (u Upstream) Proto() string {
	if u.Protocol == "" {
		return ProtocolHTTP
	}
	return u.Protocol
}

// UsesTLS reports whether connections to the instances use TLS.
func (u Upstream) UsesTLS() bool {
	switch u.Proto() {
	case ProtocolHTTPS:
		return true
	case ProtocolGRPC:
		return u.TLS.Enabled != nil && *u.TLS.Enabled
	}
	return false
}

// Equal reports whether u and o configure the same connections.
func (u Upstream) Equal(o Upstream) bool {
	a, b := u.TLS, o.TLS
	a.Enabled, b.Enabled = nil, nil
	return u.Proto() == o.Proto() && u.UsesTLS() == o.UsesTLS() && a == b
}

// ProbeType resolves Health.Type for a service with upstream u.
func (u Upstream) ProbeType(healthType string) string {
	if healthType != ProbeAuto {
		return healthType
	}
	if u.Proto() == ProtocolGRPC {
		return ProbeGRPC
	}
	return ProbeHTTP
}

// validate checks u; prefix is the key of its service section. It loads
// the TLS files, so a missing or malformed file fails at startup. With
// tagged true (the consul provider) an unset protocol may still come from
// tags, so TLS settings are accepted without one.
func (u Upstream) validate(prefix string, tagged bool) error {
	switch u.Protocol {
	case "", ProtocolHTTP, ProtocolH2C, ProtocolHTTPS, ProtocolGRPC:
	default:
		return bad(prefix+".protocol", u.Protocol, "want http, h2c, https or grpc")
	}
	t := u.TLS
	open := tagged && u.Protocol == ""
	if err := u.GRPC.validate(prefix+".grpc", u.Proto(), open); err != nil {
		return err
	}
	if t.Enabled != nil && *t.Enabled && u.Proto() != ProtocolGRPC && u.Proto() != ProtocolHTTPS && !open {
		return bad(prefix+".tls.enabled", *t.Enabled, "TLS is for protocol https or grpc (protocol is %s)", u.Proto())
	}
	if !u.UsesTLS() && !open {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.MinVersion != "" || t.InsecureSkipVerify {
			return bad(prefix+".tls", "", "TLS settings need protocol https, or grpc with tls.enabled: true (protocol is %s)", u.Proto())
		}
		return nil
	}
	if _, err := u.TLS.ClientConfig(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Key = prefix + "." + fe.Key
			return fe
		}
		return err
	}
	return nil
}

// ClientConfig builds the client TLS configuration: roots from CAFile,
// the client certificate, ServerName, MinVersion. It reads the files on
// every call. Errors are *FieldError with keys relative to the tls section
// ("tls.ca_file"). The result advertises no ALPN protocols; the transport
// that uses it sets them.
func (t UpstreamTLS) ClientConfig() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
	switch t.MinVersion {
	case "", "1.2":
	case "1.3":
		c.MinVersion = tls.VersionTLS13
	default:
		return nil, bad("tls.min_version", t.MinVersion, "want 1.2 or 1.3")
	}
	if strings.ContainsAny(t.ServerName, "/: ") {
		return nil, bad("tls.server_name", t.ServerName, "want a plain host name")
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, bad("tls.ca_file", t.CAFile, "%v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad("tls.ca_file", t.CAFile, "no PEM certificate in the file")
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, bad("tls.cert_file", t.CertFile, "cert_file and key_file go together (key_file %q)", t.KeyFile)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, bad("tls.cert_file", t.CertFile, "loading the key pair: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// validateProbeType checks a health.type value.
func validateProbeType(key, v string) error {
	switch v {
	case ProbeAuto, ProbeHTTP, ProbeGRPC:
		return nil
	}
	return bad(key, v, "want http or grpc (empty: grpc for grpc services, http otherwise)")
}

// String describes u for logs: "grpc+tls", "h2c".
func (u Upstream) String() string {
	if u.UsesTLS() && u.Proto() == ProtocolGRPC {
		return fmt.Sprintf("%s+tls", u.Proto())
	}
	return u.Proto()
}
