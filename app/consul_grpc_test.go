package app

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
	"github.com/switchyard-gw/switchyard/internal/testenv"
	"github.com/switchyard-gw/switchyard/internal/testpki"
)

// A gRPC service over mTLS, found in Consul: the tags say grpc, TLS and the
// health service name; the config file's section for the service adds what
// tags may not carry (the CA and the client certificate). Calls reach both
// instances, and an instance whose gRPC health turns NOT_SERVING leaves
// rotation with that reason.
func TestConsulGRPCServiceFromTagsWithTLSFromTheConfigFile(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	pki := testpki.New(t)
	servers := map[string]*grpctest.Server{}
	for _, name := range []string{"g-1", "g-2"} {
		srv := grpctest.Start(t, grpctest.Options{Name: name, TLS: pki.ServerTLS(true)})
		srv.Health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
		servers[name] = srv
		_, port, _ := net.SplitHostPort(srv.Addr)
		p, _ := strconv.Atoi(port)
		err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: name, Name: "tests", Address: "127.0.0.1", Port: p,
			Tags: []string{tagEnable, "switchyard.path=/grpc.testing.TestService", "switchyard.protocol=grpc",
				"switchyard.tls.enabled=true", "switchyard.tls.server_name=localhost",
				"switchyard.health.grpc_service=grpc.testing.TestService"},
			Check: &api.AgentServiceCheck{CheckID: "ttl:" + name, Name: "tests ttl", TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := consulConfig(t, c)
	cfg.Server.H2C = true
	cfg.Services = []config.Service{{Name: "tests", TLS: config.UpstreamTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}}}
	a := consulApp(t, cfg)

	cc, err := grpc.NewClient("passthrough:///"+a.ProxyAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tc := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	testenv.WaitFor(t, 5*time.Second, "calls answered by both instances", func() bool {
		resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
		if err == nil {
			seen[resp.GetServerId()] = true
		}
		return seen["g-1"] && seen["g-2"]
	})

	servers["g-2"].Health.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_NOT_SERVING)
	testenv.WaitFor(t, 5*time.Second, "g-2 out of rotation for NOT_SERVING", func() bool {
		in, ok := instanceIn(servicesView(t, a), "tests", consulID("g-2"))
		return ok && !in.Routable && strings.Contains(in.Reason, "grpc health: NOT_SERVING")
	})
	for range 4 {
		resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
		if err != nil || resp.GetServerId() != "g-1" {
			t.Fatalf("call after g-2 left: %v from %q, want g-1", err, resp.GetServerId())
		}
	}
}
