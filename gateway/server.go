package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves cleartext HTTP/1.x connections. The common request (no
// body, no upgrade, no Expect, an origin-form target) is parsed once and
// answered on the connection's goroutine, without net/http's per-request
// machinery: its background read to notice a client going away, its
// per-request contexts and deadlines. The first request on a connection
// that is anything else, or that the fast path does not fully understand,
// hands the connection, with every byte already read, to Fallback, which
// serves it from then on. Malformed requests are thereby answered by
// net/http exactly as before.
//
// What the fast path gives up: a client that closes its connection while
// its request waits for the upstream is noticed when the response is
// written, not before (the upstream wait is still bounded by
// proxy.response_header_timeout).
type Server struct {
	// Handler serves fast-path requests.
	Handler http.Handler
	// Fallback serves handed-over connections. Its ReadHeaderTimeout,
	// WriteTimeout, IdleTimeout and MaxHeaderBytes apply to the fast path
	// too.
	Fallback *http.Server
	Logger   *slog.Logger // nil: slog.Default()

	once    sync.Once
	handoff *handoffListener
	closing atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	conns map[*serverConn]struct{}
	wg    sync.WaitGroup // serving goroutines of tracked connections
}

// Connection states, for shutdown: an idle connection may be closed, an
// active one finishes its response first.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// serverConn is one client connection on the fast path.
type serverConn struct {
	net.Conn
	srv    *Server
	state  atomic.Int32
	ctx    context.Context
	remote string
	hdr    http.Header // response headers, reused from request to request
}

func (s *Server) init() {
	s.once.Do(func() {
		s.handoff = &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
		s.conns = map[*serverConn]struct{}{}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
	})
}

// Serve accepts connections on ln until Shutdown or Close. It returns
// http.ErrServerClosed after those, like http.Server.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handoff.addr = ln.Addr()
	s.mu.Unlock()
	go s.Fallback.Serve(s.handoff) // returns after Shutdown or Close

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient error: back off as
				// net/http does instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept", "error", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := &serverConn{Conn: c, srv: s}
		if !s.track(sc) {
			c.Close()
			continue
		}
		go s.serveConn(sc)
	}
}

func (s *Server) track(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, closes idle connections, lets active ones
// finish their response and shuts Fallback down, all within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.stop()
	errc := make(chan error, 1)
	go func() { errc <- s.Fallback.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeConns(false)
		select {
		case <-done:
			return <-errc
		case <-ctx.Done():
			s.closeConns(true)
			<-errc
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.stop()
	s.closeConns(true)
	return s.Fallback.Close()
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Swap(true) {
		return
	}
	if s.ln != nil {
		s.ln.Close()
	}
	// Closed here too, not only by Fallback: Fallback.Serve may not have
	// started, and a hand-over must never wait for it.
	s.handoff.Close()
}

// closeConns closes the idle connections, or all of them.
func (s *Server) closeConns(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if all || c.state.CompareAndSwap(connIdle, connClosed) {
			c.state.Store(connClosed)
			c.Close()
		}
	}
}

// handoffListener hands connections from the fast path to Fallback.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// prefixConn replays bytes the fast path read before handing over.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// headReader is the fast path's read buffer. It starts at 2 KiB, which
// holds most request heads, and grows to 8 KiB for a longer one (shrinking
// back once it is empty); a head longer than that goes to net/http, which
// reads heads up to MaxHeaderBytes. An idle connection keeps 2 KiB.
type headReader struct {
	c     net.Conn
	buf   []byte
	small []byte // the initial buffer, kept for shrinking back
	r, w  int
}

const (
	headBufInit = 2 << 10
	headBufMax  = 8 << 10
)

var errHeadBufFull = errors.New("request head exceeds the fast path's buffer")

func newHeadReader(c net.Conn) *headReader {
	b := make([]byte, headBufInit)
	return &headReader{c: c, buf: b, small: b}
}

func (b *headReader) buffered() []byte { return b.buf[b.r:b.w] }

func (b *headReader) discard(n int) {
	b.r += n
	if b.r == b.w {
		b.r, b.w = 0, 0
		b.buf = b.small
	}
}

// fill reads once more into the buffer, growing it when full. Bytes read
// with an error are kept; the error comes back on the next call.
func (b *headReader) fill() error {
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	if b.w == len(b.buf) {
		if len(b.buf) >= headBufMax {
			return errHeadBufFull
		}
		nb := make([]byte, headBufMax)
		copy(nb, b.buf[:b.w])
		b.buf = nb
	}
	n, err := b.c.Read(b.buf[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	return err
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

func (s *Server) serveConn(c *serverConn) {
	handed := false
	defer func() {
		if !handed {
			c.state.Store(connClosed)
			c.Close()
		}
		s.untrack(c)
	}()
	c.remote = c.RemoteAddr().String()
	c.ctx = context.WithValue(context.WithValue(context.Background(), http.ServerContextKey, s.Fallback), http.LocalAddrContextKey, c.LocalAddr())
	hr := newHeadReader(c.Conn)
	f := s.Fallback
	maxHead := f.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = http.DefaultMaxHeaderBytes
	}
	deadline := false // a read deadline is set
	var idleArmed time.Time
	for {
		if len(hr.buffered()) == 0 {
			// Idle until the next request starts. The idle deadline is
			// re-armed at most once a second: on a busy connection it
			// would otherwise cost a timer update per request, and an
			// idle timeout a second shorter is no one's concern.
			if f.IdleTimeout > 0 {
				if now := time.Now(); now.Sub(idleArmed) >= time.Second {
					c.SetReadDeadline(now.Add(f.IdleTimeout))
					idleArmed, deadline = now, true
				}
			} else if deadline {
				c.SetReadDeadline(time.Time{})
				deadline = false
			}
			for len(hr.buffered()) == 0 {
				if err := hr.fill(); err != nil {
					return
				}
			}
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // shut down while idle
		}
		head, ok := findHead(hr.buffered())
		if !ok {
			// The head is still coming: give it ReadHeaderTimeout.
			idleArmed = time.Time{}
			if f.ReadHeaderTimeout > 0 {
				c.SetReadDeadline(time.Now().Add(f.ReadHeaderTimeout))
				deadline = true
			} else if deadline {
				c.SetReadDeadline(time.Time{})
				deadline = false
			}
			for !ok {
				if err := hr.fill(); err != nil {
					if err != errHeadBufFull && len(hr.buffered()) == 0 {
						return
					}
					break // too large for the fast path, or cut short: net/http answers
				}
				head, ok = findHead(hr.buffered())
			}
		}
		var req *http.Request
		if ok && len(head) <= maxHead {
			req = c.parse(head)
		}
		if req == nil {
			handed = s.handOver(c, hr.buffered(), deadline)
			return
		}
		hr.discard(len(head))
		if f.WriteTimeout > 0 {
			c.SetWriteDeadline(time.Now().Add(f.WriteTimeout))
		}
		w := &response{c: c, req: req, header: c.hdr, cl: -1, close: req.Close}
		if w.header == nil {
			w.header = make(http.Header)
		}
		s.serveOne(w, req)
		if !w.finish() || w.close || s.closing.Load() {
			return
		}
		clear(w.header)
		c.hdr = w.header
		c.state.Store(connIdle)
	}
}

// serveOne runs the handler, recovering from panics as net/http does:
// http.ErrAbortHandler silently, anything else logged with its stack.
// Either way the connection is closed after the response.
func (s *Server) serveOne(w *response, req *http.Request) {
	defer func() {
		if err := recover(); err != nil {
			w.close, w.aborted = true, true
			if err != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.Logger.Error("panic serving request", "remote", w.c.remote, "error", fmt.Sprint(err), "stack", string(buf))
			}
		}
	}()
	s.Handler.ServeHTTP(w, req)
}

// handOver gives c to Fallback with the bytes already read. It reports
// whether Fallback took it.
func (s *Server) handOver(c *serverConn, buffered []byte, deadline bool) bool {
	if deadline {
		c.SetReadDeadline(time.Time{}) // net/http sets its own
	}
	return s.handoff.give(&prefixConn{Conn: c.Conn, buf: bytes.Clone(buffered)})
}

// findHead returns the request head at the start of b, through its blank
// line, if it is complete.
func findHead(b []byte) ([]byte, bool) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, false
	}
	return b[:i+4], true
}

// parse builds the request for a head the fast path handles, or returns
// nil: then net/http gets the connection and judges the head itself.
func (c *serverConn) parse(head []byte) *http.Request {
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil
	}
	line := head[:eol-1]
	rest := head[eol+1:]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil
	}
	method := knownMethod(line[:sp])
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if method == "" || sp < 1 {
		return nil
	}
	target, proto := line[:sp], line[sp+1:]
	var minor int
	var protoName string
	switch string(proto) {
	case "HTTP/1.1":
		minor, protoName = 1, "HTTP/1.1"
	case "HTTP/1.0":
		protoName = "HTTP/1.0"
	default:
		return nil
	}
	if target[0] != '/' {
		return nil // absolute-form and asterisk-form: net/http's business
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return nil
		}
	}

	// Header lines: count first, so that values share one backing array.
	n := bytes.Count(rest, []byte("\n")) - 1
	if n < 0 {
		return nil
	}
	h := make(http.Header, n)
	vals := make([]string, 0, n)
	var host string
	hosts := 0
	var connClose, keepAlive, pragmaNoCache bool
	for len(rest) > 2 {
		eol := bytes.IndexByte(rest, '\n')
		if eol < 1 || rest[eol-1] != '\r' {
			return nil
		}
		line := rest[:eol-1]
		rest = rest[eol+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validFieldName(name) || !validFieldValue(value) {
			return nil
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			hosts++
			host = string(value)
			continue
		case "Transfer-Encoding", "Upgrade", "Expect":
			return nil // bodies, protocol switches and 100-continue: net/http
		case "Content-Length":
			if string(value) != "0" {
				return nil
			}
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		case "Pragma":
			pragmaNoCache = string(value) == "no-cache"
		}
		vals = append(vals, string(value))
		if vv, ok := h[key]; ok {
			h[key] = append(vv, vals[len(vals)-1])
		} else {
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if hosts > 1 || (minor == 1 && hosts == 0) || !httpguts.ValidHostHeader(host) {
		return nil
	}
	if minor == 0 && pragmaNoCache {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}

	uri := string(target)
	u := &url.URL{}
	path, query, hasQuery := strings.Cut(uri, "?")
	if plainPath(path) {
		u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
	} else {
		var err error
		if u, err = url.ParseRequestURI(uri); err != nil {
			return nil
		}
	}
	r := http.Request{
		Method:     method,
		URL:        u,
		Proto:      protoName,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RemoteAddr: c.remote,
		RequestURI: uri,
		Close:      connClose || (minor == 0 && !keepAlive),
	}
	// The context says "under a server", as net/http's does: ReverseProxy
	// then aborts a broken body copy with http.ErrAbortHandler instead of
	// ending the response as if complete.
	return r.WithContext(c.ctx)
}

// knownMethod returns the standard method m names, or "". CONNECT is not
// among them: net/http handles it.
func knownMethod(m []byte) string {
	for _, k := range fastMethods {
		if string(m) == k {
			return k
		}
	}
	return ""
}

var fastMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch, http.MethodTrace}

// plainPath reports whether p needs no unescaping and escapes to itself,
// so that url.URL{Path: p} is what url.ParseRequestURI would build.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if !pathSafe[p[i]] {
			return false
		}
	}
	return true
}

var pathSafe = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue: visible ASCII, obs-text, space and tab; no CTLs.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if strings.EqualFold(string(trimOWS(t)), tok) {
			return true
		}
	}
	return false
}

// canonicalKey returns the canonical form of a header name; common names
// come from a table and cost no allocation.
func canonicalKey(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(string(name))
	}
	k := buf[:len(name)]
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		k[i] = c
		upper = c == '-'
	}
	if s, ok := commonKeys[string(k)]; ok {
		return s
	}
	return string(k)
}

var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Length", "Content-Type",
		"Cookie", "Date", "Dnt", "Etag", "Expect", "Forwarded", "From", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Origin", "Pragma", "Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Te", "Traceparent", "Tracestate", "Baggage", "Transfer-Encoding",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()

// response is the fast path's http.ResponseWriter. The status line and
// headers are written at the first body write, flush or the handler's end,
// so that an empty response gets "Content-Length: 0" instead of chunking.
type response struct {
	c       *serverConn
	req     *http.Request
	bw      *bufio.Writer // from writers, between the head and finish
	header  http.Header
	status  int
	cl      int64 // declared Content-Length; -1: none
	written int64
	err     error // the first write error
	wrote   bool  // the final status was set
	headOut bool  // status line and headers are written
	chunked bool
	noBody  bool // HEAD, 1xx, 204 or 304
	close   bool // close the connection after this response
	aborted bool // the handler panicked
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wrote, w.status = true, code
}

// writeInterim sends a 1xx response with the current headers right away.
func (w *response) writeInterim(code int) {
	if w.err != nil || w.req.ProtoMinor == 0 {
		return // HTTP/1.0 clients get no interim responses
	}
	bw := w.writer()
	writeStatusLine(bw, code)
	for k, vv := range w.header {
		writeField(bw, k, vv)
	}
	bw.WriteString("\r\n")
	w.err = bw.Flush()
}

func (w *response) writer() *bufio.Writer {
	if w.bw == nil {
		w.bw = writers.Get().(*bufio.Writer)
		w.bw.Reset(w.c.Conn)
	}
	return w.bw
}

// writeHead writes the status line and headers; final is true when the
// handler has returned, so the body is known to be empty.
func (w *response) writeHead(final bool) {
	if !w.wrote {
		w.wrote, w.status = true, http.StatusOK
	}
	w.headOut = true
	h := w.header
	code := w.status
	w.noBody = w.req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if v := h["Content-Length"]; len(v) > 0 {
		if n, ok := parseLength([]byte(v[0])); ok {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	var trailers []string
	if v := h["Trailer"]; len(v) > 0 {
		for _, list := range v {
			for k := range strings.SplitSeq(list, ",") {
				if k = strings.TrimSpace(k); k != "" {
					trailers = append(trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	extra := [3]string{}
	switch {
	case w.noBody || w.cl >= 0:
	case final && len(trailers) == 0:
		w.cl = 0
		extra[0] = "Content-Length: 0\r\n"
	case w.req.ProtoMinor == 1:
		w.chunked = true
		extra[0] = "Transfer-Encoding: chunked\r\n"
	default:
		w.close = true // HTTP/1.0 and no length: the end of the body is the close
	}
	if !w.chunked {
		delete(h, "Trailer")
		trailers = nil
	}
	delete(h, "Transfer-Encoding")
	if v := h["Connection"]; len(v) > 0 && hasToken([]byte(strings.Join(v, ",")), "close") {
		w.close = true
	}
	if w.c.srv != nil && w.c.srv.closing.Load() {
		w.close = true // shutting down: this is the connection's last response
	}
	switch {
	case w.close:
		h["Connection"] = []string{"close"}
	case w.req.ProtoMinor == 0:
		h["Connection"] = []string{"keep-alive"}
	}
	if _, ok := h["Date"]; !ok {
		extra[1] = "Date: " + httpDate() + "\r\n"
	}

	bw := w.writer()
	writeStatusLine(bw, code)
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || isTrailer(trailers, k) {
			continue
		}
		writeField(bw, k, vv)
	}
	bw.WriteString(extra[0])
	bw.WriteString(extra[1])
	bw.WriteString("\r\n")
}

func isTrailer(trailers []string, k string) bool {
	for _, t := range trailers {
		if t == k {
			return true
		}
	}
	return false
}

func (w *response) Write(p []byte) (int, error) {
	if !w.headOut {
		w.writeHead(false)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.written += int64(len(p))
	bw := w.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush sends what is buffered (http.Flusher).
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.headOut {
		w.writeHead(false)
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.bw.Flush()
	return w.err
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }

// finish completes the response after the handler returned and reports
// whether the connection may serve another request.
func (w *response) finish() bool {
	if w.aborted {
		// The handler panicked (ReverseProxy does when a body copy
		// fails): send what was written, unterminated, then close, as
		// net/http does.
		if w.bw != nil && w.err == nil {
			w.bw.Flush()
		}
		w.release()
		return false
	}
	if !w.headOut {
		w.writeHead(true)
	}
	if w.chunked && w.err == nil {
		w.bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if t, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(w.bw, http.CanonicalHeaderKey(t), vv)
			}
		}
		if v := w.header["Trailer"]; len(v) > 0 {
			for _, list := range v {
				for k := range strings.SplitSeq(list, ",") {
					k = http.CanonicalHeaderKey(strings.TrimSpace(k))
					if vv := w.header[k]; k != "" && len(vv) > 0 {
						writeField(w.bw, k, vv)
					}
				}
			}
		}
		w.bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	w.release()
	if w.cl >= 0 && !w.noBody && w.written != w.cl {
		return false // short body: the client must see the connection end
	}
	return w.err == nil
}

func (w *response) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writers.Put(w.bw)
		w.bw = nil
	}
}

// writeStatusLine writes "HTTP/1.1 <code> <text>\r\n".
func writeStatusLine(bw *bufio.Writer, code int) {
	if code == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [64]byte
	line := append(b[:0], "HTTP/1.1 "...)
	line = strconv.AppendInt(line, int64(code), 10)
	line = append(line, ' ')
	if text := http.StatusText(code); text != "" {
		line = append(line, text...)
	} else {
		line = append(line, "status code "...)
		line = strconv.AppendInt(line, int64(code), 10)
	}
	bw.Write(append(line, "\r\n"...))
}

// writeField writes one header field per value; a CR or LF in a value
// becomes a space, as net/http does, so no value can start a new line.
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		if strings.ContainsAny(v, "\r\n") {
			v = strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' {
					return ' '
				}
				return r
			}, v)
		}
		bw.WriteString(strings.TrimSpace(v))
		bw.WriteString("\r\n")
	}
}

// httpDate returns the current time in HTTP format, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &cachedDate{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[cachedDate]
