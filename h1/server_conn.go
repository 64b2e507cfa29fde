package h1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"
)

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
	hdr    http.Header   // response headers, reused from request to request
	base   *http.Request // carries ctx; every request starts as a copy
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

// readHead reads until the buffer holds a complete request head. ok is
// false when the head does not fit the buffer or the connection ended
// part-way (net/http answers both); err is set when the connection ended
// with nothing buffered.
func (b *headReader) readHead() (head []byte, ok bool, err error) {
	for {
		if err := b.fill(); err != nil {
			if err != errHeadBufFull && len(b.buffered()) == 0 {
				return nil, false, err
			}
			return nil, false, nil
		}
		if head, ok := findHead(b.buffered()); ok {
			return head, true, nil
		}
		if badRequestLine(b.buffered()) {
			return nil, false, nil // no head will follow: net/http answers now
		}
	}
}

// readDeadline sets a fast-path connection's read deadline only when it
// changes.
type readDeadline struct {
	c         net.Conn
	set       bool      // a read deadline is set
	idleArmed time.Time // when the idle deadline was last set
}

// idle arms the idle timeout until the next request starts. It is
// re-armed at most once a second: on a busy connection it would otherwise
// cost a timer update per request, and an idle timeout a second shorter
// is no one's concern. Zero: no deadline.
func (d *readDeadline) idle(timeout time.Duration) {
	if timeout <= 0 {
		d.clear()
		return
	}
	if now := time.Now(); now.Sub(d.idleArmed) >= time.Second {
		d.c.SetReadDeadline(now.Add(timeout))
		d.idleArmed, d.set = now, true
	}
}

// head gives the rest of a request head timeout to arrive. Zero: no
// deadline.
func (d *readDeadline) head(timeout time.Duration) {
	d.idleArmed = time.Time{}
	if timeout <= 0 {
		d.clear()
		return
	}
	d.c.SetReadDeadline(time.Now().Add(timeout))
	d.set = true
}

func (d *readDeadline) clear() {
	if d.set {
		d.c.SetReadDeadline(time.Time{})
		d.set = false
	}
}

// serveConn serves c until it closes, fails, is shut down or is handed
// over to Fallback.
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
	c.ctx = context.WithValue(s.baseCtx, http.LocalAddrContextKey, c.LocalAddr())
	hr := newHeadReader(c.Conn)
	dl := readDeadline{c: c.Conn}
	f := s.Fallback
	for {
		if len(hr.buffered()) == 0 {
			dl.idle(f.IdleTimeout)
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
		if !ok && !badRequestLine(hr.buffered()) {
			// The head is still coming: give it ReadHeaderTimeout.
			dl.head(f.ReadHeaderTimeout)
			var err error
			if head, ok, err = hr.readHead(); err != nil {
				return
			}
		}
		var x *exchange
		if ok && len(head) <= s.maxHeaderBytes() {
			x = c.parse(head)
		}
		if x == nil {
			handed = s.handOver(c, hr.buffered(), dl.set)
			return
		}
		hr.discard(len(head))
		if !s.respond(c, x) {
			return
		}
	}
}

// maxHeaderBytes is Fallback's limit on a request head.
func (s *Server) maxHeaderBytes() int {
	if n := s.Fallback.MaxHeaderBytes; n > 0 {
		return n
	}
	return http.DefaultMaxHeaderBytes
}

// respond serves one fast-path request, x's, and reports whether the
// connection may serve another.
func (s *Server) respond(c *serverConn, x *exchange) bool {
	if wt := s.Fallback.WriteTimeout; wt > 0 {
		c.SetWriteDeadline(time.Now().Add(wt))
	}
	req, w := &x.req, &x.resp
	*w = response{c: c, req: req, header: c.hdr, cl: -1, close: req.Close}
	if w.header == nil {
		w.header = make(http.Header)
	}
	s.serveOne(w, req)
	if !w.finish() || w.close || s.closing.Load() {
		return false
	}
	clear(w.header)
	c.hdr = w.header
	c.state.Store(connIdle)
	return true
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

// badRequestLine reports whether b starts with a complete first line that
// is not an HTTP/1 request line (method, target, HTTP version): net/http
// answers such a line at once, without waiting for a blank line that an
// HTTP/0.9 client never sends.
func badRequestLine(b []byte) bool {
	eol := bytes.IndexByte(b, '\n')
	if eol <= 0 || (eol == 1 && b[0] == '\r') {
		return false
	}
	line := bytes.TrimSuffix(b[:eol], []byte("\r"))
	sp := bytes.LastIndexByte(line, ' ')
	return sp <= 0 || bytes.IndexByte(line[:sp], ' ') <= 0 || !bytes.HasPrefix(line[sp+1:], []byte("HTTP/"))
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
