package faults

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
)

// The gRPC failure matrix: what a real gRPC client sees when the gateway
// cannot complete a call, and that nothing leaks (goroutines, descriptors)
// afterwards. One gateway serves every case:
//
//	/grpc.testing.TestService         -> "tests": two healthy instances
//	/grpc.testing.ReconnectService    -> "down": one instance, never up
//	/grpc.testing.XdsUpdateHealthService -> "gone": up at start, killed
//	                                       before its next probe (1h)
//	/grpc.testing.UnimplementedService   -> no route
func TestGRPCFailureMatrix(t *testing.T) {
	noLeaks(t)
	a := grpctest.Start(t, grpctest.Options{Name: "a"})
	b := grpctest.Start(t, grpctest.Options{Name: "b"})
	gone := grpctest.Start(t, grpctest.Options{Name: "gone"})
	hour := time.Hour
	goneSvc := grpcService("gone", config.UpstreamTLS{}, gone)
	goneSvc.Health = &config.HealthOverride{Interval: &hour}
	downSvc := grpcService("down", config.UpstreamTLS{})
	downSvc.Instances = []config.Instance{{ID: "dead", Address: refusedAddr(t)}}
	g, cc := startGRPC(t, grpcSetup{
		services: []config.Service{grpcService("tests", config.UpstreamTLS{}, a, b), downSvc, goneSvc},
		routes: []config.Route{
			{PathPrefix: grpcPrefix, Service: "tests"},
			{PathPrefix: "/grpc.testing.ReconnectService", Service: "down"},
			{PathPrefix: "/grpc.testing.XdsUpdateHealthService", Service: "gone"},
		},
	})
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wantStatus := func(t *testing.T, err error, code codes.Code, msgPart string) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != code || !strings.Contains(st.Message(), msgPart) {
			t.Fatalf("status = %v %q, want %v with %q", st.Code(), st.Message(), code, msgPart)
		}
	}

	t.Run("no route is UNIMPLEMENTED naming the gRPC service", func(t *testing.T) {
		_, err := testgrpc.NewUnimplementedServiceClient(cc).UnimplementedCall(ctx, &testgrpc.Empty{})
		wantStatus(t, err, codes.Unimplemented, `no route for gRPC service "grpc.testing.UnimplementedService"`)
	})
	t.Run("no healthy instance is UNAVAILABLE naming the service", func(t *testing.T) {
		_, err := testgrpc.NewReconnectServiceClient(cc).Start(ctx, &testgrpc.ReconnectParams{})
		wantStatus(t, err, codes.Unavailable, `no healthy instance of service "down"`)
	})
	t.Run("a refused connection is UNAVAILABLE naming the service", func(t *testing.T) {
		gone.Stop()
		_, err := testgrpc.NewXdsUpdateHealthServiceClient(cc).SetServing(ctx, &testgrpc.Empty{})
		wantStatus(t, err, codes.Unavailable, `service "gone": upstream failed`)
	})
	t.Run("a client deadline shorter than the upstream's latency cancels the upstream call", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, grpctest.DelayKey, "10s"), 300*time.Millisecond)
		defer dcancel()
		start := time.Now()
		_, err := client.UnaryCall(dctx, &testgrpc.SimpleRequest{})
		wantStatus(t, err, codes.DeadlineExceeded, "")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the call took %s with a 300ms deadline", d)
		}
		waitAborted(t, "UnaryCall", a, b)
	})
	t.Run("the gateway answers DEADLINE_EXCEEDED when grpc-timeout passes", func(t *testing.T) {
		// A raw HTTP/2 call: a gRPC client would give up on its own first.
		code, msg := rawGRPCCall(t, g.proxyAddr(), grpcPrefix+"/UnaryCall", map[string]string{"Grpc-Timeout": "200m", grpctest.DelayKey: "10s"})
		if code != "4" || !strings.Contains(msg, `service "tests": upstream timed out`) {
			t.Fatalf("grpc-status %q, grpc-message %q; want 4 naming the service", code, msg)
		}
		waitAborted(t, "UnaryCall", a, b)
	})
	t.Run("a client cancel mid-stream reaches the upstream", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		stream, err := client.FullDuplexCall(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		scancel()
		waitAborted(t, "FullDuplexCall", a, b)
	})
	t.Run("an instance killed mid-stream ends the call UNAVAILABLE and the next call succeeds", func(t *testing.T) {
		before := a.Calls.Load()
		req := &testgrpc.StreamingOutputCallRequest{}
		for range 50 {
			req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: 100, IntervalUs: 20_000})
		}
		stream, err := client.StreamingOutputCall(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		victim, survivor := b, a
		if a.Calls.Load() > before {
			victim, survivor = a, b
		}
		victim.Stop()
		for err == nil {
			_, err = stream.Recv()
		}
		wantStatus(t, err, codes.Unavailable, `service "tests": upstream failed mid-stream`)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
		if err != nil || resp.GetServerId() != survivor.Name {
			t.Fatalf("next call: %v from %q, want success from %q", err, resp.GetServerId(), survivor.Name)
		}
	})
}

// waitAborted waits until one of servers saw a call of method end early:
// canceled, or past the deadline the gateway forwarded in grpc-timeout.
func waitAborted(t *testing.T, method string, servers ...*grpctest.Server) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, s := range servers {
			select {
			case m := <-s.Aborted:
				if m == method {
					return
				}
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no upstream saw %s end early", method)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// rawGRPCCall sends an empty unary gRPC request over h2c with the given
// headers and returns grpc-status and grpc-message, from the headers or
// the trailers.
func rawGRPCCall(t *testing.T, addr, path string, headers map[string]string) (string, string) {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200 for every gRPC answer", resp.StatusCode)
	}
	get := func(k string) string {
		if v := resp.Header.Get(k); v != "" {
			return v
		}
		return resp.Trailer.Get(k)
	}
	return get("Grpc-Status"), get("Grpc-Message")
}

// refusedAddr returns an address on which nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
