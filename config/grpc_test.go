package config

import (
	"slices"
	"strings"
	"testing"
)

func TestIdempotentGRPCMethodsLoadFromTheFile(t *testing.T) {
	c, err := Load(writeFile(t, `
services:
  - name: greeter
    protocol: grpc
    grpc:
      idempotent_methods: ["/helloworld.Greeter/*", /pkg.Store/Get]
    instances:
      - address: 127.0.0.1:9001
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Services[0].Upstream().GRPC.IdempotentMethods
	if want := []string{"/helloworld.Greeter/*", "/pkg.Store/Get"}; !slices.Equal(got, want) {
		t.Fatalf("idempotent_methods = %q, want %q", got, want)
	}
}

func TestInvalidIdempotentGRPCMethodsNameTheKeyAndValue(t *testing.T) {
	for _, tc := range []struct{ name, grpc, protocol, want string }{
		{"a method without the leading slash", `["helloworld.Greeter/SayHello"]`, "grpc",
			`services[0].grpc.idempotent_methods: invalid value "helloworld.Greeter/SayHello"`},
		{"a service without a method", `["/helloworld.Greeter"]`, "grpc",
			`services[0].grpc.idempotent_methods: invalid value "/helloworld.Greeter"`},
		{"a wildcard inside a method name", `["/helloworld.Greeter/Say*"]`, "grpc",
			`invalid value "/helloworld.Greeter/Say*": want a full method path`},
		{"a wildcard for the service", `["/*/Get"]`, "grpc", `invalid value "/*/Get"`},
		{"three path segments", `["/a.B/C/D"]`, "grpc", `invalid value "/a.B/C/D"`},
		{"marked methods on a service that is not grpc", `["/a.B/*"]`, "h2c",
			`services[0].grpc.idempotent_methods: invalid value "/a.B/*": gRPC settings need protocol grpc (protocol is h2c)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, "services:\n  - name: s\n    protocol: "+tc.protocol+
				"\n    grpc: {idempotent_methods: "+tc.grpc+"}\n    instances: [{address: 127.0.0.1:9001}]\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestIdempotentGRPCMethodsMatchAMethodOrAWholeService(t *testing.T) {
	g := GRPC{IdempotentMethods: []string{"/helloworld.Greeter/*", "/pkg.Store/Get"}}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/helloworld.Greeter/SayHello", true},
		{"/pkg.Store/Get", true},
		{"/pkg.Store/Put", false},
		{"/pkg.Store/GetAll", false},
		{"/helloworld.Greeter", false},
		{"/helloworld.Greeter/", false},
		{"/helloworld.GreeterV2/SayHello", false},
		{"/helloworld.Greeter/SayHello/x", false},
	} {
		if got := g.Idempotent(tc.path); got != tc.want {
			t.Errorf("Idempotent(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if (GRPC{}).Idempotent("/pkg.Store/Get") {
		t.Error("no method is idempotent by default")
	}
}

func TestIdempotentGRPCMethodsOfTheFileWinOverTagsAsAWhole(t *testing.T) {
	tags := Upstream{Protocol: ProtocolGRPC, GRPC: GRPC{IdempotentMethods: []string{"/a.B/*"}}}
	if got := (Upstream{}).Over(tags).GRPC.IdempotentMethods; !slices.Equal(got, []string{"/a.B/*"}) {
		t.Fatalf("file without the key: %q, want the tags' list", got)
	}
	file := Upstream{GRPC: GRPC{IdempotentMethods: []string{"/c.D/Get"}}}
	if got := file.Over(tags).GRPC.IdempotentMethods; !slices.Equal(got, []string{"/c.D/Get"}) {
		t.Fatalf("file with the key: %q, want the file's list alone", got)
	}
	empty := Upstream{GRPC: GRPC{IdempotentMethods: []string{}}}
	if got := empty.Over(tags).GRPC.IdempotentMethods; len(got) != 0 {
		t.Fatalf("file with an empty list: %q, want none marked (the file's word)", got)
	}
}
