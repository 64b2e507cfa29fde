package faults

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
)

// A gRPC call the service marks idempotent (services[].grpc.idempotent_methods)
// is sent to another instance when the first one fails before answering,
// its body replayed; an unmarked one is not, and neither is a marked one
// whose response had begun.
func TestGRPCIdempotentMethodsAreRetriedOnAnotherInstance(t *testing.T) {
	noLeaks(t)
	// armed makes the next unary test call, on whichever instance gets it,
	// close its connection after the request was read.
	var armed, dropped atomic.Int32
	drop := func(method string) bool {
		if !strings.HasPrefix(method, grpcPrefix+"/") || !armed.CompareAndSwap(1, 0) {
			return false
		}
		dropped.Add(1)
		return true
	}
	a := grpctest.Start(t, grpctest.Options{Name: "a", Drop: drop})
	b := grpctest.Start(t, grpctest.Options{Name: "b", Drop: drop})
	svc := grpcService("tests", config.UpstreamTLS{}, a, b)
	svc.GRPC.IdempotentMethods = []string{grpcPrefix + "/UnaryCall", grpcPrefix + "/StreamingOutputCall"}
	g, cc := startGRPC(t, grpcSetup{
		services: []config.Service{svc},
		routes:   []config.Route{{PathPrefix: grpcPrefix, Service: "tests"}},
	})
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("a marked unary call whose instance drops it succeeds on the other", func(t *testing.T) {
		before, retriesBefore := attemptsOf(t, g, "tests")
		armed.Store(1)
		// 40 KiB request: the body is replayed from the recording.
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true, ResponseSize: 10,
			Payload: &testgrpc.Payload{Body: make([]byte, 40<<10)}})
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		if dropped.Load() != 1 {
			t.Fatalf("%d calls dropped, want the first attempt dropped", dropped.Load())
		}
		after, retriesAfter := attemptsOf(t, g, "tests")
		if after-before != 2 || retriesAfter-retriesBefore != 1 {
			t.Fatalf("attempts +%d, retries +%d; want 2 attempts, one of them a retry", after-before, retriesAfter-retriesBefore)
		}
		if id := resp.GetServerId(); id != "a" && id != "b" {
			t.Fatalf("answered by %q", id)
		}
	})
	t.Run("a marked call whose body outgrew the 64 KiB recording is not sent again", func(t *testing.T) {
		dropped.Store(0)
		before, _ := attemptsOf(t, g, "tests")
		armed.Store(1)
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 100<<10)}})
		if st := status.Convert(err); st.Code() != codes.Unavailable {
			t.Fatalf("status %v %q, want UNAVAILABLE", st.Code(), st.Message())
		}
		if after, _ := attemptsOf(t, g, "tests"); dropped.Load() != 1 || after-before != 1 {
			t.Fatalf("dropped %d, attempts +%d; want the one attempt dropped", dropped.Load(), after-before)
		}
	})
	t.Run("an unmarked unary call whose instance drops it fails UNAVAILABLE after one attempt", func(t *testing.T) {
		dropped.Store(0)
		before, _ := attemptsOf(t, g, "tests")
		calls := a.Calls.Load() + b.Calls.Load()
		armed.Store(1)
		_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), `service "tests": upstream failed`) {
			t.Fatalf("status %v %q, want UNAVAILABLE from the gateway", st.Code(), st.Message())
		}
		after, _ := attemptsOf(t, g, "tests")
		if dropped.Load() != 1 || after-before != 1 || a.Calls.Load()+b.Calls.Load() != calls {
			t.Fatalf("dropped %d, attempts +%d, calls served +%d; want the one attempt dropped and nothing else",
				dropped.Load(), after-before, a.Calls.Load()+b.Calls.Load()-calls)
		}
	})
	t.Run("a marked call is not sent again once its response began", func(t *testing.T) {
		before, _ := attemptsOf(t, g, "tests")
		callsA, callsB := a.Calls.Load(), b.Calls.Load()
		stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 10, IntervalUs: 10_000_000}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first message: %v", err)
		}
		victim := b
		if a.Calls.Load() > callsA {
			victim = a
		}
		victim.CloseConns()
		for err == nil {
			_, err = stream.Recv()
		}
		if st := status.Convert(err); err == io.EOF || st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "mid-stream") {
			t.Fatalf("status %v %q, want UNAVAILABLE mid-stream", st.Code(), st.Message())
		}
		after, _ := attemptsOf(t, g, "tests")
		if served := a.Calls.Load() - callsA + b.Calls.Load() - callsB; after-before != 1 || served != 1 {
			t.Fatalf("attempts +%d, calls served +%d; want one of each", after-before, served)
		}
	})
}

// attemptsOf sums switchyard_upstream_attempts_total and
// switchyard_upstream_retries_total of one service from /metrics.
func attemptsOf(t *testing.T, g *gateway, service string) (attempts, retries int) {
	t.Helper()
	resp, err := g.client.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `service="`+service+`"`) {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		switch {
		case strings.HasPrefix(line, "switchyard_upstream_attempts_total{"):
			attempts += int(v)
		case strings.HasPrefix(line, "switchyard_upstream_retries_total{"):
			retries += int(v)
		}
	}
	return attempts, retries
}
