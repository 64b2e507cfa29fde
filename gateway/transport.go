package gateway

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/h1"
)

// newUpstream returns the transport to upstreams: h1's for body-less
// requests, net/http's for the rest, all connecting through one dialer.
func newUpstream(c config.Proxy) *h1.Transport {
	dial := newDialer(c).DialContext
	fresh := newFallback(c, dial)
	fresh.DisableKeepAlives = true
	return h1.NewTransport(h1.TransportOptions{
		Dial:                  dial,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		IdleTimeout:           c.IdleConnTimeout,
		MaxIdlePerHost:        c.MaxIdleConnsPerHost,
		Fallback:              fallback{pooled: newFallback(c, dial), fresh: fresh},
	})
}

// fallback carries what h1's transport hands on: requests with a body
// over pooled connections, body-less ones (upgrades) over new ones.
// net/http's Transport sends a body-less GET again by itself when a pooled
// connection turns out closed, an attempt the Attempt hook would never
// see; on a connection it has not reused it never does. A request with a
// body it cannot replay (ReverseProxy sets no GetBody), so it never sends
// one twice. The cost is a dial per upgrade, which holds its connection
// for long anyway (an upgraded connection is never pooled).
type fallback struct{ pooled, fresh *http.Transport }

func (f fallback) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return f.fresh.RoundTrip(req)
	}
	return f.pooled.RoundTrip(req)
}

// CloseIdleConnections closes the pooled connections (h1.Transport.Close
// calls it).
func (f fallback) CloseIdleConnections() { f.pooled.CloseIdleConnections() }

// newDialer is the one dialer for upstream connections.
func newDialer(c config.Proxy) *net.Dialer {
	return &net.Dialer{
		Timeout:   c.DialTimeout, // a dead host fails fast and is retried elsewhere
		KeepAlive: 30 * time.Second,
	}
}

// newFallback returns net/http's transport with every timeout set on
// purpose: requests with a body and upgrades, over HTTP/1.1; compression
// left to the endpoints.
func newFallback(c config.Proxy, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never route upstream traffic through HTTP_PROXY
		DialContext:           dial,
		MaxIdleConns:          0, // no global cap; the per-host cap bounds it
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		IdleConnTimeout:       c.IdleConnTimeout,       // release keep-alives upstreams may have dropped
		ResponseHeaderTimeout: c.ResponseHeaderTimeout, // a hung upstream becomes 504, not a hang
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		ForceAttemptHTTP2:     false,
	}
}
