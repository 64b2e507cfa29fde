package gateway

import (
	"net/http"
	"net/http/httputil"
	"net/netip"
	"path"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The outgoing request: the path as routed, the client's Host, and
// forwarding headers that only trusted peers may set.

// cleanPath normalises p the way it is both routed and forwarded: dot
// segments resolved, repeated slashes folded, trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// rewrite builds the outgoing request. Hop-by-hop and inbound forwarding
// headers are already gone from pr.Out; the upstream host is set per attempt
// by the transport.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	out := pr.Out
	out.URL.Scheme = "http"
	if st.proto != nil {
		out.URL.Scheme = st.proto.scheme
	}
	out.Host = pr.In.Host // pass the client's Host through, like Caddy and Traefik
	p := st.path
	if st.route.strip {
		p = stripPrefix(st.route.prefix, p)
	}
	if p != pr.In.URL.Path {
		out.URL.Path, out.URL.RawPath = p, ""
	}
	if strings.EqualFold(out.Header.Get("Upgrade"), "h2c") {
		// h2c upgrades are for this hop only; never tunnel them upstream.
		out.Header.Del("Upgrade")
		out.Header.Del("Connection")
		out.Header.Del("HTTP2-Settings")
	}
	trusted := g.trustedPeer(pr.In.RemoteAddr)
	if trusted {
		for _, h := range []string{"X-Forwarded-For", "Forwarded"} {
			if v, ok := pr.In.Header[h]; ok && !hopByHop(pr.In.Header, h) {
				out.Header[h] = v
			}
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" && !hopByHop(pr.In.Header, h) {
				out.Header.Set(h, v)
			}
		}
	}
}

// hopByHop reports whether the client listed name in its Connection header,
// which makes it a hop-by-hop header that must not travel further.
func hopByHop(h http.Header, name string) bool {
	return httpguts.HeaderValuesContainsToken(h["Connection"], name)
}

// isUpgrade reports whether r asks for a protocol upgrade (WebSocket), as
// httputil.ReverseProxy decides it.
func isUpgrade(r *http.Request) bool {
	return headerValue(r.Header, "Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade")
}

func (g *Gateway) trustedPeer(remote string) bool {
	if len(g.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return g.trusted.Contains(ap.Addr())
}
