package gateway

import (
	"net"
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
	f := g.forwarding(pr.In)
	if f.xff != "" {
		out.Header.Set("X-Forwarded-For", f.xff)
	} else {
		out.Header.Del("X-Forwarded-For")
	}
	if f.fwd != nil {
		out.Header["Forwarded"] = f.fwd
	}
	out.Header.Set("X-Forwarded-Host", f.host)
	out.Header.Set("X-Forwarded-Proto", f.proto)
}

// forwarded is what the upstream learns of the client from its
// forwarding fields.
type forwarded struct {
	xff         string   // X-Forwarded-For; empty when RemoteAddr is no host:port
	fwd         []string // Forwarded, a trusted peer's passed on; nil for none
	host, proto string   // X-Forwarded-Host and -Proto
}

// forwarding computes in's forwarding fields, one rule for both cores:
// the client's address appended to a trusted peer's X-Forwarded-For, a
// trusted peer's Forwarded passed on, and X-Forwarded-Host and -Proto from
// a trusted peer or from this hop. A field the client's Connection lists is
// this hop's only and never trusted.
func (g *Gateway) forwarding(in *http.Request) forwarded {
	trusted := g.trustedPeer(in.RemoteAddr)
	f := forwarded{host: in.Host, proto: "http"}
	if in.TLS != nil {
		f.proto = "https"
	}
	if clientIP, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		f.xff = clientIP
		if prior, ok := in.Header["X-Forwarded-For"]; trusted && ok && len(prior) > 0 && !hopByHop(in.Header, "X-Forwarded-For") {
			f.xff = strings.Join(prior, ", ") + ", " + clientIP
		}
	}
	if !trusted {
		return f
	}
	if v, ok := in.Header["Forwarded"]; ok && !hopByHop(in.Header, "Forwarded") {
		f.fwd = v
	}
	if v := headerValue(in.Header, "X-Forwarded-Host"); v != "" && !hopByHop(in.Header, "X-Forwarded-Host") {
		f.host = v
	}
	if v := headerValue(in.Header, "X-Forwarded-Proto"); v != "" && !hopByHop(in.Header, "X-Forwarded-Proto") {
		f.proto = v
	}
	return f
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
