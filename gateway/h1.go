package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// h1Transport carries body-less HTTP/1.1 requests (the bulk of proxy
// traffic) on pooled keep-alive connections, doing the whole exchange on the
// calling goroutine. net/http's Transport hands every request to a writer
// and a reader goroutine per connection; on a busy proxy those hand-offs
// cost more than the exchange itself. Requests with a body, upgrades and
// anything but plain http go to the fallback Transport, which handles
// concurrent body writes, 100-continue and protocol switches.
type h1Transport struct {
	dialer            net.Dialer
	fallback          http.RoundTripper
	respHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxIdle           int

	bufs sync.Pool // *[]byte request buffers

	mu     sync.Mutex
	idle   map[string][]*h1Conn // by address, most recently used last
	closed bool
}

func newH1Transport(dialTimeout, respHeaderTimeout, idleTimeout time.Duration, maxIdle int, fallback http.RoundTripper) *h1Transport {
	return &h1Transport{
		dialer:            net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		fallback:          fallback,
		respHeaderTimeout: respHeaderTimeout,
		idleTimeout:       idleTimeout,
		maxIdle:           maxIdle,
		idle:              map[string][]*h1Conn{},
		bufs:              sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
	}
}

// h1Conn is one pooled upstream connection. It keeps a small read buffer
// only: requests are written from a shared pool of buffers, so an idle
// connection costs 2 KiB, not the 8 KiB of a bufio reader and writer.
type h1Conn struct {
	net.Conn
	addr   string
	br     *bufio.Reader // reads through limitedConn
	idleAt time.Time
	left   int64 // bytes the response head may still take; <0: no limit
}

// maxResponseHead bounds an upstream's response head, as net/http's
// Transport does by default.
const maxResponseHead = 1 << 20

var errResponseHeadTooLarge = errors.New("upstream response headers exceed 1 MiB")

// limitedConn enforces h1Conn.left on reads.
type limitedConn struct{ c *h1Conn }

func (l limitedConn) Read(p []byte) (int, error) {
	c := l.c
	if c.left == 0 {
		return 0, errResponseHeadTooLarge
	}
	if c.left > 0 && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
	}
	return n, err
}

// aLongTimeAgo is a deadline that has passed: setting it aborts pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Body != nil && req.Body != http.NoBody) || req.URL.Scheme != "http" || req.Header.Get("Upgrade") != "" {
		return t.fallback.RoundTrip(req)
	}
	for {
		c, reused, err := t.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		// A kept-alive connection the upstream closed while idle fails at
		// once with EOF or a reset and nothing read: send again on a new
		// connection, as net/http does, for idempotent methods only.
		if reused && req.Context().Err() == nil && idempotent(req.Method) && staleConnError(err) {
			continue
		}
		return nil, err
	}
}

func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func staleConnError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err)
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "read" || op.Op == "write")
}

// get returns an idle connection to addr or dials a new one. A dial error
// is the *net.OpError of the dialer, so callers recognise it.
func (t *h1Transport) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	list := t.idle[addr]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if t.idleTimeout > 0 && now.Sub(c.idleAt) > t.idleTimeout {
			go c.Close() // old: the upstream may have dropped it
			continue
		}
		t.idle[addr] = list
		t.mu.Unlock()
		c.br = getReader(c)
		return c, true, nil
	}
	t.idle[addr] = list
	t.mu.Unlock()

	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c := &h1Conn{Conn: nc, addr: addr, left: -1}
	c.br = getReader(c)
	return c, false, nil
}

// readers recycles upstream read buffers: a connection holds one only
// while an exchange uses it, not while it waits in the pool.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 2048) }}

func getReader(c *h1Conn) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(limitedConn{c})
	return br
}

// put keeps c for reuse, or closes it when the pool is full or shut, or
// when the upstream sent more than its response.
func (t *h1Transport) put(c *h1Conn) {
	if c.br.Buffered() > 0 {
		c.Close()
		return
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	c.idleAt = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle[c.addr]) >= t.maxIdle {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	t.mu.Unlock()
}

// closeIdle closes the idle connections to addr (it left rotation).
func (t *h1Transport) closeIdle(addr string) {
	t.mu.Lock()
	list := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, c := range list {
		c.Close()
	}
}

// close closes every idle connection and stops pooling. Connections in use
// close when their exchange ends.
func (t *h1Transport) close() {
	t.mu.Lock()
	t.closed = true
	all := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, list := range all {
		for _, c := range list {
			c.Close()
		}
	}
	if f, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// exchange writes req on c and reads the response head. The body is read by
// the caller; c returns to the pool when the body ends cleanly.
func (t *h1Transport) exchange(c *h1Conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The deadline goes first: set after the abort below, it could undo it.
	if t.respHeaderTimeout > 0 {
		c.SetReadDeadline(time.Now().Add(t.respHeaderTimeout))
	}
	// Abort blocked I/O when the client goes away.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	bp := t.bufs.Get().(*[]byte)
	*bp = appendRequest((*bp)[:0], req)
	_, err := c.Write(*bp)
	if cap(*bp) <= 64<<10 {
		t.bufs.Put(bp)
	}
	if err != nil {
		stop()
		return nil, err
	}
	c.left = maxResponseHead
	var resp *http.Response
	// Wait for the first byte apart, so that a connection closed before
	// answering anything shows as io.EOF (ReadResponse would say
	// ErrUnexpectedEOF) and a stale keep-alive can be told apart.
	if _, err := c.br.Peek(1); err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	for {
		var ok bool
		if resp, ok = readResponseHead(c.br, req); ok {
			break
		}
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		// Interim responses (100 Continue, 103 Early Hints) are not
		// forwarded on this path; the final one follows.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	c.left = -1
	if t.respHeaderTimeout > 0 {
		c.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			c.SetDeadline(aLongTimeAgo) // the abort raced with the line above
		}
	}
	reusable := !resp.Close && !req.Close && resp.ProtoAtLeast(1, 1)
	b := &h1Body{rc: resp.Body, t: t, c: c, stop: stop, reusable: reusable}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// appendRequest appends a body-less request in HTTP/1.1 wire form to b.
func appendRequest(b []byte, req *http.Request) []byte {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue // never let a value start a new header line
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return append(b, "\r\n"...)
}

// h1Body hands the connection back to the pool once the body was read to
// its end, or closes it when the body is abandoned or broken.
type h1Body struct {
	rc       io.ReadCloser
	t        *h1Transport
	c        *h1Conn
	stop     func() bool
	reusable bool
	done     bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(clean bool) {
	b.done = true
	// stop reports false when the client already went away and the
	// deadline was set: the connection is no longer usable.
	if b.stop() && clean && b.reusable {
		b.t.put(b.c)
		return
	}
	b.c.Close()
}
