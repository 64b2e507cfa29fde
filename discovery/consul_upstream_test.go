package discovery

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-gw/switchyard/config"
)

func TestUpstreamTags(t *testing.T) {
	tests := []struct {
		name  string
		tags  []string
		proto string
		tls   bool
		sni   string
		probe string // health.type set by tags, "" when none
		warn  string // substring of the one expected warning, "" for none
	}{
		{
			name:  "protocol=grpc with tls.enabled=true asks for gRPC over TLS",
			tags:  []string{"switchyard.enable=true", "switchyard.protocol=grpc", "switchyard.tls.enabled=true", "switchyard.tls.server_name=greeter.internal"},
			proto: "grpc", tls: true, sni: "greeter.internal",
		},
		{
			name:  "protocol=h2c is cleartext HTTP/2",
			tags:  []string{"switchyard.enable=true", "switchyard.protocol=h2c"},
			proto: "h2c",
		},
		{
			name:  "health.type=grpc selects the gRPC probe",
			tags:  []string{"switchyard.enable=true", "switchyard.protocol=grpc", "switchyard.health.type=grpc", "switchyard.health.grpc_service=greeter"},
			proto: "grpc", probe: "grpc",
		},
		{
			name: "an unknown protocol is ignored with a warning",
			tags: []string{"switchyard.enable=true", "switchyard.protocol=quic"},
			warn: `"switchyard.protocol=quic" ignored: want http, h2c, https or grpc`,
		},
		{
			name:  "TLS files cannot come from tags",
			tags:  []string{"switchyard.enable=true", "switchyard.protocol=https", "switchyard.tls.ca_file=/etc/shadow"},
			proto: "https", tls: true,
			warn: "only the config file may set tls.ca_file",
		},
		{
			name:  "insecure_skip_verify cannot come from tags",
			tags:  []string{"switchyard.enable=true", "switchyard.protocol=https", "switchyard.tls.insecure_skip_verify=true"},
			proto: "https", tls: true,
			warn: "only the config file may set tls.insecure_skip_verify",
		},
		{
			name: "an unknown probe type is ignored with a warning",
			tags: []string{"switchyard.enable=true", "switchyard.health.type=tcp"},
			warn: "want http or grpc",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warns := parseTags("switchyard", "web", tc.tags)
			if tc.warn == "" && len(warns) > 0 || tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)) {
				t.Fatalf("warnings = %q, want one containing %q", warns, tc.warn)
			}
			up := got.Upstream
			if up.Protocol != tc.proto || up.UsesTLS() != tc.tls || up.TLS.ServerName != tc.sni || up.TLS.CAFile != "" || up.TLS.InsecureSkipVerify {
				t.Fatalf("upstream = %+v", up)
			}
			var probe string
			if got.Health != nil && got.Health.Type != nil {
				probe = *got.Health.Type
			}
			if probe != tc.probe {
				t.Fatalf("health.type = %q, want %q", probe, tc.probe)
			}
			svc := buildService("web", got, nil, nil)
			if !svc.Upstream.Equal(up) {
				t.Fatalf("built service upstream = %+v, want the tags' %+v", svc.Upstream, up)
			}
		})
	}
}

func TestUpstreamTagsOfAServiceThatDidNotOptInAreIgnored(t *testing.T) {
	got, _ := parseTags("switchyard", "web", []string{"switchyard.protocol=grpc"})
	svc := buildService("web", got, nil, nil)
	if !reflect.DeepEqual(svc.Upstream, config.Upstream{}) {
		t.Fatalf("upstream = %+v, want none: the service is routed by the config file alone", svc.Upstream)
	}
}

func TestIdempotentGRPCMethodsComeFromOneCommaSeparatedTag(t *testing.T) {
	got, warns := parseTags("switchyard", "greeter", []string{"switchyard.enable=true", "switchyard.protocol=grpc",
		"switchyard.grpc.idempotent_methods=/helloworld.Greeter/*,/pkg.Store/Get"})
	want := []string{"/helloworld.Greeter/*", "/pkg.Store/Get"}
	if len(warns) != 0 || !slices.Equal(got.Upstream.GRPC.IdempotentMethods, want) {
		t.Fatalf("methods %q, warnings %q; want %q and none", got.Upstream.GRPC.IdempotentMethods, warns, want)
	}
	got, warns = parseTags("switchyard", "greeter", []string{"switchyard.enable=true",
		"switchyard.grpc.idempotent_methods=/helloworld.Greeter/*,helloworld.Greeter"})
	if len(warns) != 1 || !strings.Contains(warns[0], `"helloworld.Greeter": want a full method path`) || got.Upstream.GRPC.IdempotentMethods != nil {
		t.Fatalf("methods %q, warnings %q; want none set and one warning naming the bad entry", got.Upstream.GRPC.IdempotentMethods, warns)
	}
}
