package gateway

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/switchyard-gw/switchyard/h1"
)

// The fast core proxies the bulk of traffic, a request without a body to
// a plain HTTP/1.1 service, without httputil.ReverseProxy: it builds the
// outgoing request in one allocation with the request's state, copies the
// response headers without copying their values, and does what
// ReverseProxy would do and nothing more (FastCoreMatchesReverseProxy
// compares the two on the same upstream bytes). Everything else goes
// through ReverseProxy: bodies, upgrades, h2c, https and gRPC services,
// gRPC calls, and queries ReverseProxy would re-encode.

// fastState is a fast-core request's state, outgoing request and the
// backing of its header values, allocated as one and reused, with the
// outgoing header map, by later requests (fastStates). Nothing keeps any
// of it once the request has ended: the h1 transport writes the request
// before RoundTrip returns and keeps neither it nor its context's
// AfterFunc past the response body's Close, which fastProxy calls on
// every path; hooks may not keep it past the request's End (Hooks).
type fastState struct {
	st   reqState
	out  http.Request
	url  url.URL
	vals [16]string
	h    http.Header // the outgoing header map, cleared, for the next request
}

// fastStates holds the fastStates of ended requests.
var fastStates = sync.Pool{New: func() any { return new(fastState) }}

// maxPooledFields bounds the outgoing header map kept for reuse: clearing
// a map costs in proportion to its size, and a request with many fields
// should not make every later one pay for it.
const maxPooledFields = 32

// reset clears fs for the next request: no field of the ended one stays
// reachable, the header map keeps its buckets.
func (fs *fastState) reset() {
	h := fs.h
	if len(h) > maxPooledFields {
		h = nil
	}
	clear(h)
	*fs = fastState{h: h}
}

// queryReencoded is set when GODEBUG asks ReverseProxy to re-encode every
// query (urlmaxqueryparams): such queries are left to it.
var queryReencoded = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams=")

// fastEligible reports whether the fast core serves r: no body, no
// upgrade, a plain HTTP/1.1 service, not a gRPC call, and a query that
// ReverseProxy would forward as it is.
func (g *Gateway) fastEligible(r *http.Request, proto *protoTransport, grpc bool) bool {
	return !g.noFast && proto == nil && !grpc &&
		(r.Body == nil || r.Body == http.NoBody) &&
		len(r.Header["Upgrade"]) == 0 && plainQuery(r.URL.RawQuery)
}

// plainQuery reports whether ReverseProxy forwards q unchanged: not more
// than 10000 parameters, no ';', every '%' followed by two hex digits.
func plainQuery(q string) bool {
	if q == "" {
		return true
	}
	if queryReencoded {
		return false
	}
	amps := 0
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case '&':
			if amps++; amps >= 10000 {
				return false
			}
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// headerValue is h.Get(key) for a key in canonical form, without
// canonicalising it again.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// serveFast proxies a request fastEligible accepted; ctx is the request's
// context as the Request hook returned it.
func (g *Gateway) serveFast(w http.ResponseWriter, r *http.Request, ctx context.Context, end RequestEnd, rt *route, p *pool, clean string) {
	fs := fastStates.Get().(*fastState)
	g.serveFastIn(fs, w, r, ctx, end, rt, p, clean)
	// The request has ended (End ran): fs goes to the next, and the hook
	// may reuse its state. Not after a panic (an aborted response): fs
	// and the hook's state are then left to the collector.
	release := g.hooks.Release != nil && end != nil && g.releasable(ctx, fs.st.tried)
	fs.reset()
	fastStates.Put(fs)
	if release {
		g.hooks.Release(end)
	}
}

// releasable reports whether nothing holds the Request hook's context ctx,
// the outgoing request or its header once a fast-core request that tried
// the instances tried has ended. The h1 transport keeps none of them past
// the response body's Close (a transport given in Options might), and it
// dials a context that leaves nothing running which reaches back into
// ctx, unless ctx has a deadline (h1's detach). Dialing an IP address
// gives that context to no goroutine that outlives the dial either; a host
// name's lookup, or a dial racing IPv4 and IPv6 addresses, may.
func (g *Gateway) releasable(ctx context.Context, tried []*Upstream) bool {
	if g.wire == nil {
		return false
	}
	for _, u := range tried {
		if !u.literal {
			return false
		}
	}
	_, deadline := ctx.Deadline()
	return !deadline
}

// serveFastIn is serveFast in fs.
func (g *Gateway) serveFastIn(fs *fastState, w http.ResponseWriter, r *http.Request, ctx context.Context, end RequestEnd, rt *route, p *pool, clean string) {
	st := &fs.st
	st.route, st.pool, st.path, st.fast = rt, p, clean, true
	st.tried = st.triedA[:0]
	defer st.release()
	out := g.outRequest(r, ctx, fs)
	g.fastProxy(w, r, out, st)
	g.finish(end, st.status)
}

// outRequest builds the outgoing request in fs as ReverseProxy and rewrite
// would: r's fields, a header without hop-by-hop and forwarding fields,
// then this gateway's forwarding fields.
func (g *Gateway) outRequest(r *http.Request, ctx context.Context, fs *fastState) *http.Request {
	st := &fs.st
	out := &fs.out
	*out = *r.WithContext(ctx)
	out.Body = nil
	out.Close = false
	fs.url = *r.URL
	out.URL = &fs.url
	out.URL.Scheme = "http"
	p := st.path
	if st.route.strip {
		p = stripPrefix(st.route.prefix, p)
	}
	if p != r.URL.Path {
		out.URL.Path, out.URL.RawPath = p, ""
	}

	in := r.Header
	nv := 5 // Te, the forwarding fields, User-Agent
	for _, vv := range in {
		nv += len(vv)
	}
	vals := fs.vals[:0]
	if nv > len(fs.vals) {
		vals = make([]string, 0, nv)
	}
	h := fs.h
	if h == nil {
		h = make(http.Header, len(in)+4)
		fs.h = h
	}
	for k, vv := range in {
		if dropOut(k) || g.ownField(k) {
			continue
		}
		if vv == nil {
			h[k] = nil // as Header.Clone keeps it
			continue
		}
		i := len(vals)
		vals = append(vals, vv...)
		h[k] = vals[i:len(vals):len(vals)]
	}
	// Fields the client's Connection lists are this hop's only.
	forEachToken(in["Connection"], func(name string) { delCanonical(h, name) })
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		set("Te", "trailers")
	}

	f := g.forwarding(r)
	if f.xff != "" {
		set("X-Forwarded-For", f.xff)
	}
	if f.fwd != nil {
		h["Forwarded"] = f.fwd
	}
	set("X-Forwarded-Host", f.host)
	set("X-Forwarded-Proto", f.proto)
	if _, ok := h["User-Agent"]; !ok {
		set("User-Agent", "") // no Go default upstream
	}
	out.Header = h
	return out
}

// ownField reports whether k is one of the fields the Attempt hook sets
// itself (Hooks.Fields).
func (g *Gateway) ownField(k string) bool {
	if g.ownLens&(1<<min(len(k), 63)) == 0 {
		return false // no name of that length: most fields, at one test
	}
	for _, f := range g.ownFields {
		if len(k) == len(f) && k[0] == f[0] && k == f {
			return true
		}
	}
	return false
}

// dropOut reports whether the client's field k never travels upstream:
// the hop-by-hop fields ReverseProxy removes and the forwarding fields
// this gateway sets itself.
func dropOut(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// removeHopByHop removes from h the fields its Connection lists and the
// hop-by-hop fields, as ReverseProxy does to a response, without
// allocating. One pass over h's few fields costs less than deleting each
// hop-by-hop name.
func removeHopByHop(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		forEachToken(c, func(name string) { delCanonical(h, name) })
	}
	for k := range h {
		if hopHeader(k) {
			delete(h, k)
		}
	}
}

// hopHeader reports whether k is a hop-by-hop field ReverseProxy removes
// from every response.
func hopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// forEachToken calls f with every non-empty element of the comma-separated
// lists vv, trimmed as ReverseProxy trims them.
func forEachToken(vv []string, f func(string)) {
	for _, v := range vv {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = textproto.TrimString(tok); tok != "" {
				f(tok)
			}
		}
	}
}

// delCanonical is h.Del(name), without allocating when name is short.
func delCanonical(h http.Header, name string) {
	var buf [64]byte
	if len(name) > len(buf) {
		h.Del(name)
		return
	}
	for i := 0; i < len(name); i++ {
		if !httpguts.IsTokenRune(rune(name[i])) {
			delete(h, name) // not a field name: Del keeps it as it is
			return
		}
	}
	k := h1.CanonicalInto(buf[:], name)
	if _, ok := h[string(k)]; ok {
		delete(h, string(k))
	}
}

// errUnaskedSwitch is a 101 to a request that asked for no upgrade.
var errUnaskedSwitch = errors.New("upstream switched protocols unasked")

// fastProxy sends out and copies the response to w as ReverseProxy does:
// hop-by-hop fields removed, trailers announced and sent, a streamed body
// (no Content-Length, or text/event-stream) flushed at once and after each
// write, an error copying the body aborting the response.
func (g *Gateway) fastProxy(w http.ResponseWriter, r, out *http.Request, st *reqState) {
	resp, err := g.retry.roundTrip(out, st)
	if err != nil {
		g.upstreamError(w, out.Context(), st, err)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		g.upstreamError(w, out.Context(), st, errUnaskedSwitch)
		return
	}
	removeHopByHop(resp.Header)
	st.status = resp.StatusCode
	dst := w.Header()
	addHeader(dst, resp.Header)
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	var flush func() error
	if resp.ContentLength == -1 || eventStream(headerValue(resp.Header, "Content-Type")) {
		flush = http.NewResponseController(w).Flush
		flush() // the head goes out before the first byte of body comes
	}
	if err := g.copyBody(w, resp.Body, flush); err != nil {
		defer resp.Body.Close()
		if r.Context().Value(http.ServerContextKey) == nil {
			// Not under a server that recovers the panic (a test's
			// recorder): end the response as ReverseProxy does.
			g.log.Debug("proxy", "msg", "body copy", "error", err)
			return
		}
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close() // now, so that resp.Trailer is filled in

	if len(resp.Trailer) > 0 {
		// Trailers need chunking: a short body must not get a length.
		http.NewResponseController(w).Flush()
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range resp.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// addHeader adds every value of src to dst, as Header.Add does, sharing
// src's value slices (capped, so that a later Add copies) instead of
// copying them one value at a time.
func addHeader(dst, src http.Header) {
	for k, vv := range src {
		if len(vv) == 0 {
			continue
		}
		if !canonical(k) {
			for _, v := range vv {
				dst.Add(k, v)
			}
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
			continue
		}
		dst[k] = vv[:len(vv):len(vv)]
	}
}

// canonical reports whether http.CanonicalHeaderKey(k) is k: k is in
// canonical form, or holds a byte that is not a token's (such a key is
// left as it is).
func canonical(k string) bool {
	upper, changes := true, false
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !httpguts.IsTokenRune(rune(c)) {
			return true
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			changes = true
		}
		upper = c == '-'
	}
	return !changes
}

// eventStream reports whether the media type of ct is text/event-stream,
// as mime.ParseMediaType reads it; the parse runs only for a value that
// could be one.
func eventStream(ct string) bool {
	const es = "text/event-stream"
	if len(ct) < len(es) || !containsFold(ct, es) {
		return false
	}
	base, _, _ := mime.ParseMediaType(ct)
	return base == es
}

// containsFold reports whether s contains the lower-case ASCII sub
// without regard to ASCII case. Only ASCII letters fold to the letters of
// text/event-stream in Unicode's lower-casing, which mime.ParseMediaType
// uses, so a value without it in ASCII is not that media type.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// copyBody copies the response body to w with a pooled buffer, flushing
// after each write when flush is set; an error reading or writing is
// returned (the response cannot be completed).
func (g *Gateway) copyBody(w io.Writer, body io.Reader, flush func() error) error {
	buf := g.bufs.Get()
	defer g.bufs.Put(buf)
	for {
		nr, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			g.log.Debug("proxy", "msg", "read error during body copy", "error", rerr)
		}
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if flush != nil {
				flush()
			}
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}
