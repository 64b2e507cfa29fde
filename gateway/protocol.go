package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/switchyard-gw/switchyard/config"
)

// protoTransport is how one service's requests reach its instances when
// they do not speak plain HTTP/1.1 (config.Upstream). Immutable; a
// service's settings changing replaces it whole.
//
// HTTP/2 connections come from net/http's Transport (its bundled HTTP/2,
// unencrypted HTTP/2 through http.Protocols): one pool per service,
// connections shared by concurrent requests, each carrying as many streams
// as the upstream's SETTINGS_MAX_CONCURRENT_STREAMS allows (1000 when it
// sets none); a request beyond that opens another connection rather than
// waiting (StrictMaxConcurrentRequests false). A connection the upstream
// sends GOAWAY on takes no new streams; the ones in flight finish, and
// requests the upstream did not process are re-sent on a new connection by
// the Transport itself. x/net/http2 offers the same with more knobs; the
// standard library's version is kept because it is what net/http's server
// side and the h2c listener already use, with one set of bugs to track.
type protoTransport struct {
	up     config.Upstream
	rt     http.RoundTripper
	scheme string // of the outgoing URL: "http" or "https"
	// grpc: the service speaks gRPC. A call's bound is its grpc-timeout,
	// not proxy.response_header_timeout: a server-streaming call sends its
	// headers with its first message, which may come much later.
	grpc bool
}

// errUpstreamTLS wraps a TLS configuration that could not be built; every
// request to the service fails with it (502, UNAVAILABLE) until fixed.
var errUpstreamTLS = errors.New("upstream tls configuration")

// newProtoTransport builds the transport for up, or returns nil for plain
// HTTP/1.1, which the gateway's own HTTP/1 transport carries.
func newProtoTransport(c config.Proxy, up config.Upstream, service string, log *slog.Logger) *protoTransport {
	proto := up.Proto()
	if proto == config.ProtocolHTTP {
		return nil
	}
	pt := &protoTransport{up: up, scheme: "http", grpc: proto == config.ProtocolGRPC}
	// The HTTP/1 fallback's settings, timeouts and dialer, plus HTTP/2.
	t := newFallback(c, newDialer(c).DialContext)
	t.TLSHandshakeTimeout = c.DialTimeout // a stalled handshake is a failed connection
	t.Protocols = new(http.Protocols)
	t.HTTP2 = &http.HTTP2Config{
		// More connections rather than queueing behind a full one.
		StrictMaxConcurrentRequests: false,
		// A connection silent for 30s is pinged; no answer in 15s closes
		// it, so a black-holed upstream is noticed.
		SendPingTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
	}
	if pt.grpc {
		t.ResponseHeaderTimeout = 0 // bounded by grpc-timeout (see protoTransport.grpc)
	}
	if up.UsesTLS() {
		pt.scheme = "https"
		tc, err := up.TLS.ClientConfig()
		if err != nil {
			log.Error("upstream tls: every request to the service fails until fixed", "service", service, "error", err)
			pt.rt = failTransport{fmt.Errorf("%w: %w", errUpstreamTLS, err)}
			return pt
		}
		if tc.InsecureSkipVerify {
			log.Warn("upstream tls: insecure_skip_verify is set, instance certificates are not verified", "service", service)
		}
		t.TLSClientConfig = tc
		t.Protocols.SetHTTP2(true)
		// https lets ALPN choose; gRPC needs HTTP/2.
		t.Protocols.SetHTTP1(proto == config.ProtocolHTTPS)
	} else {
		// h2c and grpc: HTTP/2 with prior knowledge, no upgrade dance.
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	pt.rt = t
	return pt
}

// closeIdle closes the transport's idle connections.
func (pt *protoTransport) closeIdle() {
	if t, ok := pt.rt.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

// failTransport fails every request with err, before anything is sent.
type failTransport struct{ err error }

func (f failTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, f.err
}

// SetUpstreams sets how each service's instances are spoken to; services
// not in ups speak HTTP/1.1. A service whose settings did not change keeps
// its transport and connections; one whose settings changed gets a new
// transport, and the old one's idle connections are closed (requests in
// flight on it finish). Call it before SetRoutes when both change.
func (g *Gateway) SetUpstreams(ups map[string]config.Upstream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, up := range ups {
		svc := g.serviceLocked(name)
		old := svc.proto.Load()
		if old == nil && up.Proto() == config.ProtocolHTTP {
			continue
		}
		if old != nil && old.up.Equal(up) {
			if !slices.Equal(old.up.GRPC.IdempotentMethods, up.GRPC.IdempotentMethods) {
				// Same connections, other retry policy: keep the pool.
				pt := *old
				pt.up = up
				svc.proto.Store(&pt)
				g.log.Info("upstream grpc idempotent methods", "service", name, "methods", up.GRPC.IdempotentMethods)
			}
			continue
		}
		svc.proto.Store(newProtoTransport(g.proxyCfg, up, name, g.log))
		if old != nil {
			old.closeIdle()
		}
		g.log.Info("upstream protocol", "service", name, "protocol", up.String())
	}
	for name, svc := range g.services {
		if _, ok := ups[name]; ok {
			continue
		}
		if old := svc.proto.Swap(nil); old != nil {
			old.closeIdle()
		}
	}
}

// closeProtoTransports closes the idle connections of every service's
// transport. Called with g.mu held.
func (g *Gateway) closeProtoTransportsLocked() {
	for _, svc := range g.services {
		if pt := svc.proto.Load(); pt != nil {
			pt.closeIdle()
		}
	}
}
