package h1

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves cleartext HTTP/1.x connections: the common request on
// the fast path, every other connection by Fallback (the package comment
// says which is which and what the fast path gives up). Set the exported
// fields before Serve; safe for concurrent use after.
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

// NetConn returns the connection c wraps.
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
