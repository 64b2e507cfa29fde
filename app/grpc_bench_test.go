package app

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// BenchmarkGRPCUnary measures gRPC unary calls (grpc-go's interop
// UnaryCall, 100-byte response) per CPU-second of this process, which holds
// the client, the upstream and, for "gateway", Switchyard on an h2c
// listener with an h2c upstream. The difference between the two rows is
// the gateway's cost:
//
//	go test -run '^$' -bench GRPCUnary -benchtime 20000x ./app/
//
// calls/cpu-s is the figure to compare; ns/op depends on how many cores
// the machine gives the run.
func BenchmarkGRPCUnary(b *testing.B) {
	srv := grpctest.Start(b, grpctest.Options{Name: "bench"})
	b.Run("direct", func(b *testing.B) { benchUnary(b, srv.Addr) })
	b.Run("gateway", func(b *testing.B) { benchUnary(b, startGRPCGateway(b, srv.Addr)) })
}

func benchUnary(b *testing.B, addr string) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	req := &testgrpc.SimpleRequest{ResponseSize: 100}
	if _, err := client.UnaryCall(context.Background(), req); err != nil { // connect first
		b.Fatal(err)
	}
	b.SetParallelism(4) // concurrent calls share the one HTTP/2 connection
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.UnaryCall(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "calls/cpu-s")
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startGRPCGateway runs Switchyard with an h2c listener routing the
// interop TestService to upstream (protocol grpc) and returns its address.
func startGRPCGateway(b *testing.B, upstream string) string {
	c := config.Default()
	c.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	c.Server.H2C = true
	c.Telemetry.Disabled = true
	c.Services = []config.Service{{Name: "tests", Protocol: config.ProtocolGRPC, Instances: []config.Instance{{ID: "bench", Address: upstream}}}}
	c.Routes = []config.Route{{PathPrefix: "/grpc.testing.TestService", Service: "tests"}}
	if err := c.Normalize(); err != nil {
		b.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	a, err := New(&c, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(b, 5*time.Second, "a healthy gRPC instance", func() bool { return a.Gateway().Healthy("tests") == 1 })
	return a.ProxyAddr()
}
