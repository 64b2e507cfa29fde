// Package grpctest runs real grpc-go servers for tests: grpc-go's own
// interop TestService (grpc.testing, the generated code that ships with
// grpc-go, so no protoc is needed) and the standard grpc.health.v1 service,
// on 127.0.0.1, in cleartext (h2c) or over TLS.
//
// The TestService follows the interop conventions: a request's
// response_status is returned as the call's status, response sizes and
// intervals shape the streams, and the metadata keys EchoInitialKey and
// EchoTrailerKey are sent back as header and trailer. A unary call sleeps
// for the duration in the DelayKey metadata first.
package grpctest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Metadata keys the TestService reacts to.
const (
	EchoInitialKey = "x-grpc-test-echo-initial"
	EchoTrailerKey = "x-grpc-test-echo-trailing-bin"
	DelayKey       = "x-delay"
)

// Server is one running gRPC server.
type Server struct {
	Name   string // returned as server_id in SimpleResponse (fill_server_id)
	Addr   string // 127.0.0.1:port
	Health *health.Server

	// Calls counts the calls that reached the TestService.
	Calls atomic.Int64
	// Conns counts the connections accepted.
	Conns atomic.Int64
	// Aborted receives the method name of every call whose context ended
	// (canceled, or its deadline passed) while it ran (buffered; extra
	// values are dropped).
	Aborted chan string

	srv  *grpc.Server
	once sync.Once
	done chan struct{} // closed when Serve returned

	mu    sync.Mutex
	conns map[string]net.Conn // open connections by remote address
}

// Options shape a server.
type Options struct {
	Name string
	TLS  *tls.Config // nil: h2c
	// Extra server options (keepalive, stream limits).
	ServerOptions []grpc.ServerOption
	// Drop, when set, is asked about every unary call (its full method,
	// "/pkg.Service/Method") after its request was read and before the
	// service sees it; true closes the call's connection without an
	// answer, as an instance that crashes mid-call. Called from the
	// server's goroutines.
	Drop func(method string) bool
}

// Start runs a server until the test ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, opt)
}

// StartAt runs a server on addr (to bring a stopped instance back).
func StartAt(t testing.TB, addr string, opt Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, opt)
}

func serve(t testing.TB, ln net.Listener, opt Options) *Server {
	s := Serve(ln, opt)
	t.Cleanup(func() { s.Stop(); <-s.done })
	return s
}

// Serve runs a server on ln until Stop or GracefulStop, for programs that
// are not tests (bench/grpc runs it as a separate upstream process).
func Serve(ln net.Listener, opt Options) *Server {
	s := &Server{
		Name:    opt.Name,
		Addr:    ln.Addr().String(),
		Health:  health.NewServer(),
		Aborted: make(chan string, 64),
		conns:   make(map[string]net.Conn),
	}
	opts := append([]grpc.ServerOption(nil), opt.ServerOptions...)
	if opt.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(opt.TLS)))
	}
	if opt.Drop != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(s.dropper(opt.Drop)))
	}
	s.srv = grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(s.srv, &testService{s: s})
	healthpb.RegisterHealthServer(s.srv, s.Health)
	s.done = make(chan struct{})
	go func() { defer close(s.done); _ = s.srv.Serve(countingListener{ln, s}) }()
	return s
}

// countingListener counts the connections accepted and keeps the open
// ones for CloseConns and Drop.
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	l.s.Conns.Add(1)
	l.s.mu.Lock()
	l.s.conns[c.RemoteAddr().String()] = c
	l.s.mu.Unlock()
	return &trackedConn{Conn: c, s: l.s}, nil
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	s *Server
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.RemoteAddr().String())
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// CloseConns closes every open connection at once, without GOAWAY, and
// keeps listening: calls in flight fail as on a crash, new ones reconnect.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// dropper is the unary interceptor of Options.Drop: it closes the
// connection a call came on when drop says so.
func (s *Server) dropper(drop func(string) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !drop(info.FullMethod) {
			return handler(ctx, req)
		}
		if p, ok := peer.FromContext(ctx); ok {
			s.mu.Lock()
			c := s.conns[p.Addr.String()]
			s.mu.Unlock()
			if c != nil {
				c.Close()
			}
		}
		return nil, status.Error(codes.Unavailable, "grpctest: connection dropped")
	}
}

// Stop closes the listener and every connection at once: in-flight calls
// fail, as when the process is killed.
func (s *Server) Stop() { s.once.Do(s.srv.Stop) }

// GracefulStop sends GOAWAY, lets in-flight calls finish, then stops.
func (s *Server) GracefulStop() { s.once.Do(s.srv.GracefulStop) }

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	s *Server
}

// begin counts the call, echoes the initial metadata as headers and the
// trailer key as trailer, and reports an aborted call when it ends.
func (ts *testService) begin(ctx context.Context, method string) func() {
	ts.s.Calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(EchoInitialKey); len(v) > 0 {
		_ = grpc.SetHeader(ctx, metadata.Pairs(EchoInitialKey, v[0]))
	}
	if v := md.Get(EchoTrailerKey); len(v) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs(EchoTrailerKey, v[0]))
	}
	return func() {
		if ctx.Err() != nil {
			select {
			case ts.s.Aborted <- method:
			default:
			}
		}
	}
}

func echoStatus(es *testgrpc.EchoStatus) error {
	if es == nil || es.Code == 0 {
		return nil
	}
	return status.Error(codes.Code(es.Code), es.Message)
}

func payload(size int32) *testgrpc.Payload {
	return &testgrpc.Payload{Body: make([]byte, size)}
}

// wait sleeps for d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (ts *testService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	defer ts.begin(ctx, "EmptyCall")()
	return &testgrpc.Empty{}, nil
}

func (ts *testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	defer ts.begin(ctx, "UnaryCall")()
	if v := metadata.ValueFromIncomingContext(ctx, DelayKey); len(v) > 0 {
		d, _ := time.ParseDuration(v[0])
		if err := wait(ctx, d); err != nil {
			return nil, err
		}
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	resp := &testgrpc.SimpleResponse{Payload: payload(req.GetResponseSize())}
	if req.GetFillServerId() {
		resp.ServerId = ts.s.Name
	}
	return resp, nil
}

func (ts *testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	defer ts.begin(ctx, "StreamingOutputCall")()
	for _, p := range req.GetResponseParameters() {
		if err := wait(ctx, time.Duration(p.GetIntervalUs())*time.Microsecond); err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(p.GetSize())}); err != nil {
			return err
		}
	}
	return echoStatus(req.GetResponseStatus())
}

func (ts *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	defer ts.begin(stream.Context(), "StreamingInputCall")()
	var sum int32
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		sum += int32(len(req.GetPayload().GetBody()))
	}
}

func (ts *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	defer ts.begin(ctx, "FullDuplexCall")()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := wait(ctx, time.Duration(p.GetIntervalUs())*time.Microsecond); err != nil {
				return err
			}
			if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(p.GetSize())}); err != nil {
				return err
			}
		}
	}
}
