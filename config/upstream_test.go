package config

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-gw/switchyard/internal/testpki"
)

func TestUpstreamSettingsLoadFromTheFile(t *testing.T) {
	pki := testpki.New(t)
	c, err := Load(writeFile(t, fmt.Sprintf(`
services:
  - name: greeter
    protocol: grpc
    tls:
      enabled: true
      ca_file: %s
      cert_file: %s
      key_file: %s
      server_name: greeter.internal
      min_version: "1.3"
    health:
      grpc_service: greeter.v1.Greeter
    instances:
      - address: 127.0.0.1:9001
  - name: web
    instances:
      - address: 127.0.0.1:9002
`, pki.CAFile, pki.ClientCert, pki.ClientKey)))
	if err != nil {
		t.Fatal(err)
	}
	up := c.Services[0].Upstream()
	if up.Proto() != ProtocolGRPC || !up.UsesTLS() || up.String() != "grpc+tls" {
		t.Fatalf("upstream = %+v (%s), want grpc with TLS", up, up)
	}
	tc, err := up.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "greeter.internal" || tc.MinVersion != tls.VersionTLS13 || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.InsecureSkipVerify {
		t.Fatalf("tls config = %+v", tc)
	}
	h := c.Services[0].Health.Apply(c.Health)
	if got := up.ProbeType(h.Type); got != ProbeGRPC || h.GRPCService != "greeter.v1.Greeter" {
		t.Fatalf("probe = %q for %q, want grpc for greeter.v1.Greeter", got, h.GRPCService)
	}
	web := c.Services[1].Upstream()
	if web.Proto() != ProtocolHTTP || web.UsesTLS() || web.ProbeType("") != ProbeHTTP {
		t.Fatalf("default upstream = %+v", web)
	}
}

func TestInvalidUpstreamSettingsNameTheKey(t *testing.T) {
	pki := testpki.New(t)
	service := func(body string) string {
		return "services:\n  - name: s\n    instances: [{address: 127.0.0.1:9001}]\n" + body
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"an unknown protocol is refused", service("    protocol: http3\n"), `services[0].protocol: invalid value "http3"`},
		{"TLS settings on a cleartext protocol are refused", service("    protocol: h2c\n    tls: {server_name: x}\n"), "services[0].tls: TLS settings need protocol https"},
		{"tls.enabled on http is refused", service("    tls: {enabled: true}\n"), "services[0].tls.enabled"},
		{"a grpc service without tls.enabled takes no TLS settings", service("    protocol: grpc\n    tls: {ca_file: x}\n"), "services[0].tls: TLS settings need"},
		{"a missing CA file is named", service("    protocol: https\n    tls: {ca_file: /nonexistent/ca.pem}\n"), `services[0].tls.ca_file: invalid value "/nonexistent/ca.pem"`},
		{"a CA file without certificates is refused", service("    protocol: https\n    tls: {ca_file: " + pki.ClientKey + "}\n"), "no PEM certificate"},
		{"a certificate needs its key", service("    protocol: https\n    tls: {cert_file: " + pki.ClientCert + "}\n"), "services[0].tls.cert_file"},
		{"an unknown TLS version is refused", service("    protocol: https\n    tls: {min_version: \"1.1\"}\n"), `services[0].tls.min_version: invalid value "1.1": want 1.2 or 1.3`},
		{"a server name with a port is refused", service("    protocol: https\n    tls: {server_name: \"a:443\"}\n"), "services[0].tls.server_name"},
		{"with static instances TLS settings need a TLS protocol", service("    tls: {ca_file: " + pki.CAFile + "}\n"), "services[0].tls: TLS settings need"},
		{"with consul a missing CA file is named even without a protocol", "discovery: {provider: consul}\nservices:\n  - name: s\n    tls: {ca_file: /nonexistent/ca.pem}\n", "services[0].tls.ca_file"},
		{"an unknown probe type is refused", service("    health: {type: tcp}\n"), `services[0].health.type: invalid value "tcp"`},
		{"an unknown global probe type is refused", "health: {type: exec}\n" + service(""), `health.type: invalid value "exec"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWithConsulTLSSettingsMayWaitForTheProtocolFromTags(t *testing.T) {
	pki := testpki.New(t)
	_, err := Load(writeFile(t, fmt.Sprintf("discovery: {provider: consul}\nservices:\n  - name: s\n    tls: {ca_file: %s}\n", pki.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpstreamFileSettingsWinOverTagsFieldByField(t *testing.T) {
	yes, no := true, false
	file := Upstream{TLS: UpstreamTLS{ServerName: "file.internal", Enabled: &no}}
	tags := Upstream{Protocol: ProtocolGRPC, TLS: UpstreamTLS{ServerName: "tag.internal", Enabled: &yes, MinVersion: "1.3", InsecureSkipVerify: true}}
	got := file.Over(tags)
	if got.Protocol != ProtocolGRPC || got.TLS.ServerName != "file.internal" || got.TLS.MinVersion != "1.3" || got.UsesTLS() {
		t.Fatalf("merged = %+v", got)
	}
	if got.TLS.InsecureSkipVerify {
		t.Fatal("insecure_skip_verify was taken from tags; only the config file may set it")
	}
	if !got.Equal(Upstream{Protocol: "grpc", TLS: UpstreamTLS{ServerName: "file.internal", MinVersion: "1.3"}}) {
		t.Fatal("tls.enabled false and unset should compare equal")
	}
	if got.Equal(got.Over(Upstream{}).withServerName("other")) {
		t.Fatal("a different server name should not compare equal")
	}
}

func (u Upstream) withServerName(n string) Upstream { u.TLS.ServerName = n; return u }
