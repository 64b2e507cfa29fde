package faults

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
	"github.com/switchyard-gw/switchyard/internal/testpki"
)

// grpcPrefix routes grpc-go's interop TestService as a whole.
const grpcPrefix = "/grpc.testing.TestService"

// grpcSetup describes one gateway for gRPC tests: its listener (h2c or
// TLS), its services and routes.
type grpcSetup struct {
	tlsFront bool
	pki      *testpki.PKI // needed with tlsFront and for TLS upstreams
	services []config.Service
	routes   []config.Route
	mutate   func(*config.Config)
}

// startGRPC runs the gateway of s and returns it with a gRPC client
// connection to its proxy listener.
func startGRPC(t *testing.T, s grpcSetup) (*gateway, *grpc.ClientConn) {
	t.Helper()
	g := start(t, func(c *config.Config) {
		c.Services, c.Routes = s.services, s.routes
		c.Server.H2C = !s.tlsFront
		if s.tlsFront {
			c.Server.TLSCertFile, c.Server.TLSKeyFile = s.pki.ServerCert, s.pki.ServerKey
		}
		if s.mutate != nil {
			s.mutate(c)
		}
	})
	creds := insecure.NewCredentials()
	if s.tlsFront {
		creds = credentials.NewTLS(s.pki.ClientTLS())
	}
	cc, err := grpc.NewClient("passthrough:///"+g.proxyAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return g, cc
}

// grpcService is a config service of protocol grpc over the servers.
func grpcService(name string, up config.UpstreamTLS, servers ...*grpctest.Server) config.Service {
	s := config.Service{Name: name, Protocol: config.ProtocolGRPC, TLS: up}
	for _, srv := range servers {
		s.Instances = append(s.Instances, config.Instance{ID: srv.Addr, Address: srv.Addr})
	}
	return s
}

func TestGRPCEveryCallKindThroughTheGateway(t *testing.T) {
	pki := testpki.New(t)
	yes := true
	mtls := config.UpstreamTLS{Enabled: &yes, CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	for _, tc := range []struct {
		name     string
		tlsFront bool
		upTLS    *tls.Config        // upstream server TLS; nil: h2c
		up       config.UpstreamTLS // the service's tls section
	}{
		{"h2c listener to an h2c upstream", false, nil, config.UpstreamTLS{}},
		{"TLS listener to an mTLS upstream", true, pki.ServerTLS(true), mtls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			srv := grpctest.Start(t, grpctest.Options{Name: "one", TLS: tc.upTLS})
			_, cc := startGRPC(t, grpcSetup{
				tlsFront: tc.tlsFront, pki: pki,
				services: []config.Service{grpcService("tests", tc.up, srv)},
				routes:   []config.Route{{PathPrefix: grpcPrefix, Service: "tests"}},
			})
			client := testgrpc.NewTestServiceClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			unaryWithMetadata(t, ctx, client)
			unaryStatusPassesThrough(t, ctx, client)
			serverStreaming(t, ctx, client)
			clientStreaming(t, ctx, client)
			bidiPingPong(t, ctx, client)
			if n := srv.Calls.Load(); n != 5 {
				t.Fatalf("upstream saw %d calls, want 5", n)
			}
		})
	}
}

func unaryWithMetadata(t *testing.T, ctx context.Context, client testgrpc.TestServiceClient) {
	t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, grpctest.EchoInitialKey, "initial-value", grpctest.EchoTrailerKey, "\x00\xfftrailer")
	var header, trailer metadata.MD
	req := &testgrpc.SimpleRequest{ResponseSize: 300 << 10, Payload: &testgrpc.Payload{Body: bytes.Repeat([]byte("x"), 200<<10)}, FillServerId: true}
	resp, err := client.UnaryCall(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("unary: %v", err)
	}
	if len(resp.GetPayload().GetBody()) != 300<<10 || resp.GetServerId() != "one" {
		t.Fatalf("unary: %d bytes from %q", len(resp.GetPayload().GetBody()), resp.GetServerId())
	}
	if got := header.Get(grpctest.EchoInitialKey); len(got) != 1 || got[0] != "initial-value" {
		t.Fatalf("initial metadata = %q", got)
	}
	if got := trailer.Get(grpctest.EchoTrailerKey); len(got) != 1 || got[0] != "\x00\xfftrailer" {
		t.Fatalf("binary trailing metadata = %q", got)
	}
}

func unaryStatusPassesThrough(t *testing.T, ctx context.Context, client testgrpc.TestServiceClient) {
	t.Helper()
	msg := "precondition failed: 100% \t\n日本"
	_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.FailedPrecondition), Message: msg}})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != msg {
		t.Fatalf("status = %v %q, want FailedPrecondition %q", st.Code(), st.Message(), msg)
	}
}

func serverStreaming(t *testing.T, ctx context.Context, client testgrpc.TestServiceClient) {
	t.Helper()
	sizes := []int32{31415, 9, 2653, 58979}
	req := &testgrpc.StreamingOutputCallRequest{}
	for _, s := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{Size: s})
	}
	stream, err := client.StreamingOutputCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		resp, err := stream.Recv()
		if err == io.EOF {
			if i != len(sizes) {
				t.Fatalf("server streaming: %d messages, want %d", i, len(sizes))
			}
			return
		}
		if err != nil {
			t.Fatalf("server streaming: %v", err)
		}
		if got := int32(len(resp.GetPayload().GetBody())); got != sizes[i] {
			t.Fatalf("server streaming message %d: %d bytes, want %d", i, got, sizes[i])
		}
	}
}

func clientStreaming(t *testing.T, ctx context.Context, client testgrpc.TestServiceClient) {
	t.Helper()
	stream, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum int32
	for _, s := range []int32{27182, 8, 1828, 45904} {
		if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, s)}}); err != nil {
			t.Fatalf("client streaming send: %v", err)
		}
		sum += s
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetAggregatedPayloadSize() != sum {
		t.Fatalf("client streaming: %v, aggregated %d, want %d", err, resp.GetAggregatedPayloadSize(), sum)
	}
}

// bidiPingPong sends one request and waits for its answer before the
// next: only a full-duplex proxy gets through.
func bidiPingPong(t *testing.T, ctx context.Context, client testgrpc.TestServiceClient) {
	t.Helper()
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int32{31415, 9, 2653, 58979} {
		err := stream.Send(&testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: size}},
			Payload:            &testgrpc.Payload{Body: make([]byte, 1000*(i+1))},
		})
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		resp, err := stream.Recv()
		if err != nil || int32(len(resp.GetPayload().GetBody())) != size {
			t.Fatalf("pong %d: %v", i, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
}
