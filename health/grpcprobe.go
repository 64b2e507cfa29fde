package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/switchyard-gw/switchyard/config"
)

// This file holds the probes that depend on a service's upstream protocol:
// the gRPC health check and HTTP probes over TLS or h2c. Plain HTTP/1.1
// probes use the Checker's own connections (probe.go).

// prober checks one instance once. A nil error is a pass; the error's text
// is the reason an operator sees. ctx carries the probe timeout. Safe for
// concurrent use.
type prober interface {
	probe(ctx context.Context, addr string, set settings) error
}

// upstreamProber returns the prober for a service whose effective health
// settings are h and whose instances speak up, or nil when the Checker's
// plain HTTP/1.1 probe applies. A TLS configuration that cannot be built
// (a file went missing since startup) yields a prober that fails with
// that error, so the reason is shown rather than a wrong verdict.
func upstreamProber(h config.Health, up config.Upstream) prober {
	var tc *tls.Config
	if up.UsesTLS() {
		var err error
		if tc, err = up.TLS.ClientConfig(); err != nil {
			return failProber{fmt.Errorf("upstream tls: %w", err)}
		}
	}
	if up.ProbeType(h.Type) == config.ProbeGRPC {
		creds := insecure.NewCredentials()
		if tc != nil {
			creds = credentials.NewTLS(tc)
		}
		return &grpcProber{creds: creds}
	}
	switch {
	case tc != nil:
		t := probeTransport()
		t.TLSClientConfig = tc
		if up.Proto() == config.ProtocolGRPC {
			t.Protocols.SetHTTP1(false) // a gRPC server speaks HTTP/2 only
		}
		return &httpProber{client: probeClient(t), scheme: "https"}
	case up.Proto() == config.ProtocolH2C || up.Proto() == config.ProtocolGRPC:
		t := probeTransport()
		t.Protocols.SetHTTP1(false)
		t.Protocols.SetHTTP2(false)
		t.Protocols.SetUnencryptedHTTP2(true)
		return &httpProber{client: probeClient(t), scheme: "http"}
	}
	return nil
}

// probeTransport opens a new connection for every probe, like the
// Checker's default client, so a probe proves the instance still accepts
// connections.
func probeTransport() *http.Transport {
	t := &http.Transport{DisableKeepAlives: true, Proxy: nil, Protocols: new(http.Protocols)}
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetHTTP2(true)
	return t
}

func probeClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpProber is the HTTP probe over TLS (https, grpc with TLS) or h2c.
type httpProber struct {
	client *http.Client
	scheme string
}

func (p *httpProber) probe(ctx context.Context, addr string, set settings) error {
	return httpCheck(ctx, p.client, p.scheme+"://"+addr+set.Path, set)
}

// grpcProber calls grpc.health.v1.Health/Check on a fresh connection.
// It asks about set.GRPCService ("" is the server as a whole).
type grpcProber struct {
	creds credentials.TransportCredentials
}

func (p *grpcProber) probe(ctx context.Context, addr string, set settings) error {
	var seen connErr
	// passthrough: addr is already resolved; no resolver goroutines.
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(p.creds),
		grpc.WithUserAgent("switchyard-health/1"),
		grpc.WithContextDialer(seen.dial),
	)
	if err != nil {
		return fmt.Errorf("grpc client: %w", err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: set.GRPCService})
	if err != nil {
		return grpcProbeError(err, seen.get(), set.Timeout)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health: %s", s)
	}
	return nil
}

// grpcProbeError shortens a failed Check to what an operator needs: a
// timeout, the cause of a connection failure as probeError reads it (conn
// is the first error the connection itself returned, nil if none), else
// the gRPC code and message. A status carries its cause as text only,
// which is why the cause is taken from the connection instead.
func grpcProbeError(err, conn error, timeout time.Duration) error {
	st := status.Convert(err)
	switch {
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("timeout after %s", timeout)
	case st.Code() == codes.Unavailable && conn != nil:
		return probeError(conn, timeout)
	}
	return fmt.Errorf("grpc health: %s: %s", st.Code(), st.Message())
}

// connErr keeps the first error a probe's connection returned: from
// dialling, or from reading or writing the socket. Safe for concurrent
// use (gRPC dials and reads on goroutines of its own).
type connErr struct {
	mu  sync.Mutex
	err error
}

func (e *connErr) note(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *connErr) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// dial is a grpc.WithContextDialer dialer that notes what fails.
func (e *connErr) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		e.note(err)
		return nil, err
	}
	return &notingConn{c, e}, nil
}

// notingConn notes the first failed read or write on its connection.
type notingConn struct {
	net.Conn
	seen *connErr
}

func (c *notingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.seen.note(err)
	}
	return n, err
}

func (c *notingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.seen.note(err)
	}
	return n, err
}

// failProber fails every probe with the same error.
type failProber struct{ err error }

func (p failProber) probe(context.Context, string, settings) error { return p.err }

// httpCheck GETs url with client and checks the status against set.
func httpCheck(ctx context.Context, client *http.Client, url string, set settings) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "switchyard-health/1")
	resp, err := client.Do(req)
	if err != nil {
		return probeError(err, set.Timeout)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !set.ExpectedStatus.Contains(resp.StatusCode) {
		return fmt.Errorf("status %d (want %s)", resp.StatusCode, set.ExpectedStatus)
	}
	return nil
}
