package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/internal/grpctest"
	"github.com/switchyard-gw/switchyard/internal/testpki"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

// reasonOf returns the reason shown for one instance.
func reasonOf(c *Checker, service, id string) string {
	for _, s := range c.Services() {
		if s.Name != service {
			continue
		}
		for _, in := range s.Instances {
			if in.ID == id {
				return in.Reason
			}
		}
	}
	return ""
}

func upstreamSnapshot(up config.Upstream, h *config.HealthOverride, ins ...discovery.Instance) discovery.Snapshot {
	return discovery.Snapshot{Services: []discovery.Service{{Name: "svc", Instances: ins, Upstream: up, Health: h}}}
}

func TestGRPCProbeFollowsTheServingStatus(t *testing.T) {
	srv := grpctest.Start(t, grpctest.Options{})
	name := "grpc.testing.TestService"
	srv.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	c, rec := start(t, Options{Defaults: healthCfg(20*time.Millisecond, 1, 1)})
	// health.type is left empty: a grpc service gets the gRPC probe.
	c.Update(upstreamSnapshot(config.Upstream{Protocol: "grpc"}, &config.HealthOverride{GRPCService: &name},
		discovery.Instance{ID: "a", Address: srv.Addr, Registry: discovery.RegistryHealth{Status: discovery.StatusPassing}}))
	testenv.WaitFor(t, 5*time.Second, "instance in rotation", func() bool { return len(rec.healthy("svc")) == 1 })
	if r := reasonOf(c, "svc", "a"); !strings.Contains(r, "consul: passing") || !strings.Contains(r, "probe: passing") {
		t.Fatalf("reason = %q, want consul and probe both named", r)
	}

	srv.Health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	testenv.WaitFor(t, 5*time.Second, "instance out of rotation", func() bool { return len(rec.healthy("svc")) == 0 })
	if r := reasonOf(c, "svc", "a"); !strings.Contains(r, "grpc health: NOT_SERVING") {
		t.Fatalf("reason = %q, want the NOT_SERVING status named", r)
	}
	srv.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	testenv.WaitFor(t, 5*time.Second, "instance back in rotation", func() bool { return len(rec.healthy("svc")) == 1 })
}

func TestGRPCProbeOfAnUnknownServiceNameFails(t *testing.T) {
	srv := grpctest.Start(t, grpctest.Options{})
	name, typ := "no.such.Service", config.ProbeGRPC
	c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 1, 1)})
	// An h2c service probed with gRPC by an explicit health.type.
	c.Update(upstreamSnapshot(config.Upstream{Protocol: "h2c"}, &config.HealthOverride{GRPCService: &name, Type: &typ},
		discovery.Instance{ID: "a", Address: srv.Addr}))
	testenv.WaitFor(t, 5*time.Second, "the first probe", c.Ready)
	if r := reasonOf(c, "svc", "a"); len(rec.healthy("svc")) != 0 || !strings.Contains(r, "NotFound") {
		t.Fatalf("healthy %v, reason %q: want out of rotation with NotFound", rec.healthy("svc"), r)
	}
}

func TestGRPCProbeOverMutualTLS(t *testing.T) {
	pki := testpki.New(t)
	srv := grpctest.Start(t, grpctest.Options{TLS: pki.ServerTLS(true)})
	yes := true
	withCert := config.Upstream{Protocol: "grpc", TLS: config.UpstreamTLS{Enabled: &yes, CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}}
	withoutCert := withCert
	withoutCert.TLS.CertFile, withoutCert.TLS.KeyFile = "", ""

	for _, tc := range []struct {
		name     string
		up       config.Upstream
		routable bool
	}{
		{"a client certificate signed by the CA passes", withCert, true},
		{"no client certificate fails", withoutCert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 1, 1)})
			c.Update(upstreamSnapshot(tc.up, nil, discovery.Instance{ID: "a", Address: srv.Addr}))
			testenv.WaitFor(t, 5*time.Second, "the first probe", c.Ready)
			if got := len(rec.healthy("svc")) == 1; got != tc.routable {
				t.Fatalf("routable = %v, want %v (reason %q)", got, tc.routable, reasonOf(c, "svc", "a"))
			}
		})
	}
}

func TestHTTPSProbeUsesTheServiceCA(t *testing.T) {
	pki := testpki.New(t)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.TLS == nil {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	ts.TLS = pki.ServerTLS(false)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	addr := strings.TrimPrefix(ts.URL, "https://")

	for _, tc := range []struct {
		name     string
		tls      config.UpstreamTLS
		routable bool
		reason   string
	}{
		{"the configured CA verifies the certificate", config.UpstreamTLS{CAFile: pki.CAFile}, true, "probe: passing"},
		{"the system roots do not", config.UpstreamTLS{}, false, "certificate"},
		{"a server name the certificate lacks fails", config.UpstreamTLS{CAFile: pki.CAFile, ServerName: "other.example"}, false, "other.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := healthCfg(time.Hour, 1, 1)
			h.Timeout = 10 * time.Second // the first use of the system roots parses them all
			c, rec := start(t, Options{Defaults: h})
			c.Update(upstreamSnapshot(config.Upstream{Protocol: "https", TLS: tc.tls}, nil, discovery.Instance{ID: "a", Address: addr}))
			testenv.WaitFor(t, 5*time.Second, "the first probe", c.Ready)
			r := reasonOf(c, "svc", "a")
			if got := len(rec.healthy("svc")) == 1; got != tc.routable || !strings.Contains(r, tc.reason) {
				t.Fatalf("routable = %v, reason %q; want %v and %q", got, r, tc.routable, tc.reason)
			}
		})
	}
}

func TestHTTPProbeOfAnH2CServiceSpeaksHTTP2(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
		}
	}))
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetUnencryptedHTTP2(true) // prior knowledge only, no HTTP/1
	ts.Start()
	t.Cleanup(ts.Close)
	c, rec := start(t, Options{Defaults: healthCfg(time.Hour, 1, 1)})
	c.Update(upstreamSnapshot(config.Upstream{Protocol: "h2c"}, nil, discovery.Instance{ID: "a", Address: strings.TrimPrefix(ts.URL, "http://")}))
	testenv.WaitFor(t, 5*time.Second, "the first probe", c.Ready)
	if len(rec.healthy("svc")) != 1 {
		t.Fatalf("not routable: %q", reasonOf(c, "svc", "a"))
	}
}

func TestGRPCProbeFailuresAreShortenedFromTheConnectionNotTheText(t *testing.T) {
	dead := testenv.DeadAddr(t)
	p := &grpcProber{creds: insecure.NewCredentials()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.probe(ctx, dead, settings{Health: config.Health{Timeout: 5 * time.Second}}); err == nil || err.Error() != "connection refused" {
		t.Fatalf("probe of a closed port = %v, want \"connection refused\"", err)
	}

	for _, tc := range []struct {
		name string
		err  error
		conn error
		want string
	}{
		{"a deadline says how long was waited", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), nil, "timeout after 2s"},
		{"an unavailable server with a reset connection says so", status.Error(codes.Unavailable, "connection error"), &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection reset by peer"},
		{"an unavailable server with an early close is EOF", status.Error(codes.Unavailable, "connection closed"), io.EOF, "EOF"},
		{"an unavailable server with nothing seen keeps code and message", status.Error(codes.Unavailable, "no connection refused here"), nil, "grpc health: Unavailable: no connection refused here"},
		{"another code keeps code and message", status.Error(codes.NotFound, "unknown service"), io.EOF, "grpc health: NotFound: unknown service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := grpcProbeError(tc.err, tc.conn, 2*time.Second).Error(); got != tc.want {
				t.Fatalf("grpcProbeError = %q, want %q", got, tc.want)
			}
		})
	}
}
