package h1

import (
	"bufio"
	"context"
	"errors"
	"net"
	"time"
)

// upConn is one pooled upstream connection. It keeps a small read buffer
// only: requests are written from a shared pool of buffers, so an idle
// connection costs 2 KiB, not the 8 KiB of a bufio reader and writer.
type upConn struct {
	net.Conn
	addr   string
	br     *bufio.Reader // reads through limitedConn
	idleAt time.Time
	// takenAt is when get took the connection from the pool; zero for a
	// new one. The exchange that follows at once times its response
	// head from it, without reading the clock again.
	takenAt time.Time
	left    int64 // bytes the response head may still take; <0: no limit
	peek    *idlePeek
	// overrun is set when the upstream sent more than the response it
	// declared: the connection is past a message boundary for good.
	overrun bool
	abort   func() // ends blocked I/O (built once, not per exchange)
}

// maxResponseHead bounds an upstream's response head, as net/http's
// Transport does by default.
const maxResponseHead = 1 << 20

var errResponseHeadTooLarge = errors.New("upstream response headers exceed 1 MiB")

// limitedConn enforces upConn.left on reads.
type limitedConn struct{ c *upConn }

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

// get returns an idle connection to addr or dials a new one. A dial error
// is the *net.OpError of the dialer, so callers recognise it.
func (t *Transport) get(ctx context.Context, addr string) (*upConn, bool, error) {
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
		c.takenAt = now
		// Whatever an upstream sent while no request was outstanding
		// (bytes after its response, EOF) makes the connection unusable:
		// reading on would take those bytes for the next answer. The
		// exchange checks that before it writes (Transport.send).
		c.br = t.getReader(c)
		return c, true, nil
	}
	t.idle[addr] = list
	t.mu.Unlock()

	dctx, done := detach(ctx)
	nc, err := t.dial(dctx, "tcp", addr)
	done()
	if err != nil {
		return nil, false, err
	}
	c := &upConn{Conn: nc, addr: addr, left: -1, peek: newIdlePeek(nc)}
	c.abort = func() { c.SetDeadline(aLongTimeAgo) }
	c.br = t.getReader(c)
	return c, false, nil
}

// detach returns a context for a dial: ctx's values and cancellation, but
// a cancellation of its own, so that what a dial may leave running once it
// returned (its timeout's timer, which fires late and then unlinks its
// context from the parent) does not reach back into ctx after done was
// called: a request's context may be reused once the request has ended
// (gateway.Hooks.Release). A ctx with a deadline is used as it is: its
// expiry must fail the dial as a timeout, which a cancellation of its
// own could not tell apart. So is a ctx already done, which fails the
// dial at once, where the cancellation of a context of its own would
// come a moment later.
func detach(ctx context.Context) (context.Context, func()) {
	if ctx.Done() == nil || ctx.Err() != nil {
		return ctx, func() {}
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return dctx, func() {
		stop()
		cancel()
	}
}

// getReader gives c a read buffer for one exchange: a connection holds
// one only while an exchange uses it, not while it waits in the pool.
func (t *Transport) getReader(c *upConn) *bufio.Reader {
	br := t.readers.Get().(*bufio.Reader)
	br.Reset(limitedConn{c})
	return br
}

// put keeps c for reuse, or closes it when the pool is full or shut, or
// when the upstream sent more than its response (bytes already read past
// it; bytes that come later are found by get).
func (t *Transport) put(c *upConn) {
	if c.br.Buffered() > 0 || c.overrun {
		c.Close()
		return
	}
	c.br.Reset(nil)
	t.readers.Put(c.br)
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

// CloseIdle closes the idle connections to addr, e.g. when it left
// rotation.
func (t *Transport) CloseIdle(addr string) {
	t.mu.Lock()
	list := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, c := range list {
		c.Close()
	}
}

// Close closes every idle connection, the Fallback's too, and stops
// pooling. Connections in use close when their exchange ends.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	all := t.idle
	t.idle = map[string][]*upConn{}
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
