package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
	"github.com/switchyard-gw/switchyard/internal/testpki"
)

// protoBackend answers with the protocol and TLS state it was reached by.
func protoBackend(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s tls=%v host=%s", r.Proto, r.TLS != nil, r.Host)
}

func TestH2CServiceIsReachedOverCleartextHTTP2(t *testing.T) {
	be := httptest.NewUnstartedServer(http.HandlerFunc(protoBackend))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetUnencryptedHTTP2(true) // prior knowledge only
	be.Start()
	t.Cleanup(be.Close)
	g, front := setup(t, Options{}, addr(be))
	g.SetUpstreams(map[string]config.Upstream{"web": {Protocol: config.ProtocolH2C}})
	resp, body := get(t, front.URL+"/x")
	code := resp.StatusCode
	if code != 200 || !strings.HasPrefix(body, "HTTP/2.0 tls=false host="+strings.TrimPrefix(front.URL, "http://")) {
		t.Fatalf("%d %q: want HTTP/2 in cleartext with the client's Host", code, body)
	}
}

func TestHTTPSServiceNegotiatesByALPN(t *testing.T) {
	pki := testpki.New(t)
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{
		{"an upstream offering h2 gets HTTP/2", true, "HTTP/2.0"},
		{"an HTTP/1.1-only upstream gets HTTP/1.1", false, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := httptest.NewUnstartedServer(http.HandlerFunc(protoBackend))
			be.TLS = pki.ServerTLS(false)
			be.EnableHTTP2 = tc.h2
			be.StartTLS()
			t.Cleanup(be.Close)
			g, front := setup(t, tlsOptions(Options{}), strings.TrimPrefix(be.URL, "https://"))
			g.SetUpstreams(map[string]config.Upstream{"web": {Protocol: config.ProtocolHTTPS, TLS: config.UpstreamTLS{CAFile: pki.CAFile}}})
			resp, body := get(t, front.URL+"/")
			code := resp.StatusCode
			if code != 200 || !strings.HasPrefix(body, tc.proto+" tls=true") {
				t.Fatalf("%d %q, want %s over TLS", code, body, tc.proto)
			}
		})
	}
}

// tlsOptions gives opt the test proxy settings with a dial timeout long
// enough for a TLS handshake under the race detector on a loaded machine
// (the dial timeout bounds the handshake too); these tests are not about
// timeouts, and one second made a slow handshake a 504.
func tlsOptions(opt Options) Options {
	opt.Proxy = testProxyConfig()
	opt.Proxy.DialTimeout = 10 * time.Second
	return opt
}

func TestHTTPSServiceWithAnUntrustedCertificateAnswers502(t *testing.T) {
	pki := testpki.New(t)
	be := httptest.NewUnstartedServer(http.HandlerFunc(protoBackend))
	be.TLS = pki.ServerTLS(false)
	be.StartTLS()
	t.Cleanup(be.Close)
	g, front := setup(t, tlsOptions(Options{}), strings.TrimPrefix(be.URL, "https://"))
	g.SetUpstreams(map[string]config.Upstream{"web": {Protocol: config.ProtocolHTTPS}}) // system roots only
	if resp, _ := get(t, front.URL+"/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}

func TestInsecureSkipVerifyIsLogged(t *testing.T) {
	pki := testpki.New(t)
	be := httptest.NewUnstartedServer(http.HandlerFunc(protoBackend))
	be.TLS = pki.ServerTLS(false)
	be.StartTLS()
	t.Cleanup(be.Close)
	logs := &testenv.SyncBuffer{}
	g, front := setup(t, tlsOptions(Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}), strings.TrimPrefix(be.URL, "https://"))
	g.SetUpstreams(map[string]config.Upstream{"web": {Protocol: config.ProtocolHTTPS, TLS: config.UpstreamTLS{InsecureSkipVerify: true}}})
	if resp, _ := get(t, front.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 with verification off", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), "insecure_skip_verify") || !strings.Contains(logs.String(), "service=web") {
		t.Fatalf("logs do not name the choice:\n%s", logs.String())
	}
}

func TestAServiceBackToHTTPUsesTheHTTP1Transport(t *testing.T) {
	be := backend(t, protoBackend)
	g, front := setup(t, Options{}, addr(be))
	g.SetUpstreams(map[string]config.Upstream{"web": {Protocol: config.ProtocolH2C}})
	if resp, _ := get(t, front.URL+"/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("h2c to an HTTP/1-only upstream: %d, want 502", resp.StatusCode)
	}
	g.SetUpstreams(map[string]config.Upstream{})
	resp, body := get(t, front.URL+"/")
	code := resp.StatusCode
	if code != 200 || !strings.HasPrefix(body, "HTTP/1.1") {
		t.Fatalf("%d %q, want HTTP/1.1 again", code, body)
	}
}

func TestChangingOnlyTheIdempotentGRPCMethodsKeepsTheConnections(t *testing.T) {
	be := backend(t, protoBackend)
	g, _ := setup(t, Options{}, addr(be))
	up := config.Upstream{Protocol: config.ProtocolGRPC}
	g.SetUpstreams(map[string]config.Upstream{"web": up})
	load := func() *protoTransport {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.services["web"].proto.Load()
	}
	first := load()
	up.GRPC.IdempotentMethods = []string{"/pkg.Store/*"}
	g.SetUpstreams(map[string]config.Upstream{"web": up})
	second := load()
	if second == first || second.rt != first.rt {
		t.Fatalf("transport replaced %v, pool kept %v; want a new policy on the same pool", second != first, second.rt == first.rt)
	}
	if !second.up.GRPC.Idempotent("/pkg.Store/Get") || first.up.GRPC.Idempotent("/pkg.Store/Get") {
		t.Fatal("the new policy is not the one in effect, or the old value was modified")
	}
}
