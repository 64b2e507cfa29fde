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
//
// net/http's Transport (requests with a body, upgrades) uses a new
// connection for every request. It cannot prove a connection is at a
// message boundary when it pools it: it puts the connection back before
// it looks for bytes the upstream sent after its response, so the next
// request may take those bytes as its answer (another client's response,
// in a proxy). Not reusing also means it never sends a request again by
// itself on a pooled connection found closed, an attempt the Attempt hook
// would not see. The cost is a dial per request with a body; an upgrade
// holds its connection for long anyway.
func newUpstream(c config.Proxy) *h1.Transport {
	dial := newDialer(c).DialContext
	fresh := newFallback(c, dial)
	fresh.DisableKeepAlives = true
	return h1.NewTransport(h1.TransportOptions{
		Dial:                  dial,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		IdleTimeout:           c.IdleConnTimeout,
		MaxIdlePerHost:        c.MaxIdleConnsPerHost,
		Fallback:              fresh,
	})
}

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
