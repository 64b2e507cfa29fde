package faults

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
)

// quietGRPCService is a grpc service probed once only, so that the
// upstream's connection count is the gateway's proxy connections plus one.
func quietGRPCService(srv *grpctest.Server) config.Service {
	s := grpcService("tests", config.UpstreamTLS{}, srv)
	hour := time.Hour
	s.Health = &config.HealthOverride{Interval: &hour}
	return s
}

// An upstream that limits each connection to 2 concurrent streams gets 6
// concurrent calls on at least 3 connections, none queued into failure.
func TestGRPCStreamsBeyondTheUpstreamLimitOpenMoreConnections(t *testing.T) {
	noLeaks(t)
	srv := grpctest.Start(t, grpctest.Options{ServerOptions: []grpc.ServerOption{grpc.MaxConcurrentStreams(2)}})
	_, cc := startGRPC(t, grpcSetup{
		services: []config.Service{quietGRPCService(srv)},
		routes:   []config.Route{{PathPrefix: grpcPrefix, Service: "tests"}},
	})
	before := srv.Conns.Load()
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), grpctest.DelayKey, "300ms"), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
	}
	if n := srv.Conns.Load() - before; n < 3 {
		t.Fatalf("gateway used %d upstream connections for 6 concurrent calls at 2 streams each, want at least 3", n)
	}
}

// An upstream that sends GOAWAY every 100ms (grpc-go's MaxConnectionAge)
// has its connections drained and replaced while calls keep flowing: no
// call fails.
func TestGRPCUpstreamGoAwayDrainsWithoutFailingCalls(t *testing.T) {
	noLeaks(t)
	srv := grpctest.Start(t, grpctest.Options{ServerOptions: []grpc.ServerOption{grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge:      100 * time.Millisecond,
		MaxConnectionAgeGrace: 10 * time.Second,
	})}})
	_, cc := startGRPC(t, grpcSetup{
		services: []config.Service{quietGRPCService(srv)},
		routes:   []config.Route{{PathPrefix: grpcPrefix, Service: "tests"}},
	})
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	before := srv.Conns.Load() // the probe's and the first proxy connection
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			// Until the upstream has replaced its connection a few times.
			for i := 0; srv.Conns.Load()-before < 4; i++ {
				if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 100}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call failed while the upstream rotated connections: %v", err)
	}
}
