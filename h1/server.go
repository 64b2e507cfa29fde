package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	baseCtx context.Context // what every request's context derives from
	handoff *handoffListener
	closing atomic.Bool
	writers sync.Pool // *bufio.Writer response buffers, held from a head to the end of its response
	date    dateCache

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
		s.baseCtx = context.WithValue(context.Background(), http.ServerContextKey, s.Fallback)
		s.writers.New = func() any { return bufio.NewWriterSize(nil, 4096) }
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
