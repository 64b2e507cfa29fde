package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Transport carries body-less HTTP/1.1 requests (the bulk of proxy
// traffic) on pooled keep-alive connections, doing the whole exchange on
// the calling goroutine. net/http's Transport hands every request to a
// writer and a reader goroutine per connection; on a busy proxy those
// hand-offs cost more than the exchange itself. Requests with a body,
// upgrades and anything but plain http go to Fallback, which handles
// concurrent body writes, 100-continue and protocol switches.
//
// Safe for concurrent use. Build it with NewTransport.
type Transport struct {
	dial              func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback          http.RoundTripper
	respHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxIdle           int

	bufs    sync.Pool // *[]byte request buffers
	readers sync.Pool // *bufio.Reader, held by a connection only during an exchange

	mu     sync.Mutex
	idle   map[string][]*upConn // by address, most recently used last
	closed bool
}

// TransportOptions configure a Transport. Zero durations mean no limit.
type TransportOptions struct {
	// Dial connects to an upstream; share it with Fallback, so that both
	// connect alike. Its errors must be *net.OpError with Op "dial", as
	// net.Dialer's are (Classify tells them by that). Nil: a zero
	// net.Dialer, bounded by the request's context only.
	Dial                  func(ctx context.Context, network, addr string) (net.Conn, error)
	ResponseHeaderTimeout time.Duration // from the request written to the response head read
	IdleTimeout           time.Duration // an idle pooled connection older than this is not reused
	MaxIdlePerHost        int           // idle connections kept per upstream address
	// Fallback carries what the fast exchange does not: requests with a
	// body, upgrades, other schemes. Required.
	Fallback http.RoundTripper
}

// NewTransport returns a Transport with an empty pool.
func NewTransport(o TransportOptions) *Transport {
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	return &Transport{
		dial:              o.Dial,
		fallback:          o.Fallback,
		respHeaderTimeout: o.ResponseHeaderTimeout,
		idleTimeout:       o.IdleTimeout,
		maxIdle:           o.MaxIdlePerHost,
		idle:              map[string][]*upConn{},
		bufs:              sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
		readers:           sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 2048) }},
	}
}

// aLongTimeAgo is a deadline that has passed: setting it aborts pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper. It makes exactly one attempt:
// a request that fails on a kept-alive connection the upstream had closed
// returns an error wrapping ErrStaleConn, and sending it again is the
// caller's decision, so that every attempt is the caller's to see.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Body != nil && req.Body != http.NoBody) || req.URL.Scheme != "http" || upgrades(req) {
		resp, err := t.fallback.RoundTrip(req)
		if err == nil && !(resp.StatusCode == http.StatusSwitchingProtocols && upgrades(req)) {
			if err = checkResponse(resp); err != nil {
				resp.Body.Close()
				return nil, err
			}
		}
		return resp, err
	}
	for {
		c, reused, err := t.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(c, req, reused)
		if err == errNotQuiet {
			// The pooled connection had something unread: nothing was
			// sent on it, so this is no attempt. Take the next.
			c.Close()
			continue
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return resp, nil
	}
}

// errNotQuiet is exchange's answer when a pooled connection was found
// with something unread before the request was written.
var errNotQuiet = errors.New("pooled connection not at a message boundary")

// upgrades is req.Header.Get("Upgrade") != "", without canonicalising the
// key again.
func upgrades(req *http.Request) bool {
	v := req.Header["Upgrade"]
	return len(v) > 0 && v[0] != ""
}

// exchange writes req on c and reads the response head. The body is read by
// the caller; c returns to the pool when the body ends cleanly. A failure
// before the first response byte on a reused connection wraps
// ErrStaleConn.
func (t *Transport) exchange(c *upConn, req *http.Request, reused bool) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The deadline goes first: set after the abort below, it could undo it.
	// Every exchange sets it before its first read or write, so a pooled
	// connection may keep the last one, passed or not (see below).
	if t.respHeaderTimeout > 0 {
		start := c.takenAt
		if start.IsZero() {
			start = time.Now() // dialed: the dial took its time
		}
		c.SetReadDeadline(start.Add(t.respHeaderTimeout))
	}
	// Abort blocked I/O when the client goes away.
	stop := noStop
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.abort)
	}
	// The body, allocated with the response it belongs to.
	b := &pooledBody{t: t, c: c}
	bp := t.bufs.Get().(*[]byte)
	*bp = appendRequest((*bp)[:0], req)
	err := t.send(c, *bp, reused)
	if cap(*bp) <= 64<<10 {
		t.bufs.Put(bp)
	}
	if err == errNotQuiet {
		stop()
		return nil, err
	}
	if err != nil {
		stop()
		return nil, t.firstByteError(ctx, err, reused)
	}
	c.left = maxResponseHead
	var resp *http.Response
	// Wait for the first byte apart, so that a connection closed before
	// answering anything shows as io.EOF (ReadResponse would say
	// ErrUnexpectedEOF) and a stale keep-alive can be told apart.
	if _, err := c.br.Peek(1); err != nil {
		stop()
		return nil, t.firstByteError(ctx, err, reused)
	}
	stray := false
	for {
		var ok bool
		if resp, ok = readResponseHead(c.br, req, &b.sp); ok {
			break
		}
		resp, err = http.ReadResponse(c.br, req)
		if err == nil {
			err = checkResponse(resp)
		}
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		// Interim responses (100 Continue, 103 Early Hints) are not
		// forwarded on this path; the final one follows.
		if resp.StatusCode >= 200 {
			break
		}
		// 102 Processing and 103 Early Hints may precede any final
		// response; any other interim response (100 Continue to a
		// request that sent no Expect) is not an answer to this request.
		if resp.StatusCode != http.StatusProcessing && resp.StatusCode != http.StatusEarlyHints {
			stray = true
		}
	}
	c.left = -1
	// The body is read without the deadline, unless it is buffered in
	// full already: then nothing reads the socket before the next
	// exchange sets a deadline of its own, and clearing it would cost a
	// timer update for nothing.
	if t.respHeaderTimeout > 0 && !bodyBuffered(resp, c.br) {
		c.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			c.SetDeadline(aLongTimeAgo) // the abort raced with the line above
		}
	}
	// A connection that carried a response nobody asked for is not
	// trusted with another request.
	reusable := !resp.Close && !req.Close && resp.ProtoAtLeast(1, 1) && !stray
	if lb, ok := resp.Body.(*lengthBody); ok {
		lb.conn = c
	}
	b.rc, b.stop, b.reusable = resp.Body, stop, reusable
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// bodyBuffered reports whether resp's body is in br in full, or absent.
func bodyBuffered(resp *http.Response, br *bufio.Reader) bool {
	if resp.Body == http.NoBody {
		return true
	}
	_, ok := resp.Body.(*lengthBody)
	return ok && resp.ContentLength <= int64(br.Buffered())
}

// send writes the request b on c. A pooled connection must be quiet
// (nothing unread) first, or send writes nothing and returns errNotQuiet.
// Where it can, send folds the check, the write and the wait for the
// response into one step (idlePeek.send), which spares a read that would
// find nothing yet.
func (t *Transport) send(c *upConn, b []byte, reused bool) error {
	r := c.peek.send(b)
	if !r.checked {
		if reused && !c.peek.quietNow() {
			return errNotQuiet
		}
		_, err := c.Write(b)
		return err
	}
	if !r.quiet && reused {
		return errNotQuiet
	}
	if r.err != nil {
		return &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", r.err)}
	}
	if r.sent < len(b) {
		// The socket's buffer was full, or a fresh connection had
		// something to read already: the ordinary write and read, which
		// wait as they must.
		_, err := c.Write(b[r.sent:])
		return err
	}
	return nil
}

// firstByteError is the error of an exchange that failed before any byte
// of the response arrived: the context's when the caller went away,
// wrapped in ErrStaleConn when a reused connection was found closed.
func (t *Transport) firstByteError(ctx context.Context, err error, reused bool) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case reused && staleConnError(err):
		return fmt.Errorf("%w: %w", ErrStaleConn, err)
	}
	return err
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
			if hasCRLF(v) {
				continue // never let a value start a new header line
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if f, ok := req.Context().(HeadFields); ok {
		b = f.AppendHeadFields(b)
	}
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return append(b, "\r\n"...)
}

// HeadFields is implemented by a request's context that has fields of its
// own for the request head: RoundTrip writes what AppendHeadFields appends
// to b after the header's fields, as it is, without the header map's
// cost. It must append whole lines ("Name: value\r\n") of valid names and
// values, and the request's header should hold no field of the same names.
// Not asked of a request RoundTrip leaves to its fallback.
type HeadFields interface {
	AppendHeadFields(b []byte) []byte
}

// pooledBody hands the connection back to the pool once the body was read to
// its end, or closes it when the body is abandoned or broken.
type pooledBody struct {
	rc       io.ReadCloser
	t        *Transport
	c        *upConn
	stop     func() bool
	reusable bool
	done     bool
	sp       respSpace // the response, when readResponseHead read it
}

// noStop is the stop function of an exchange whose context is never
// cancelled: nothing to stop, and the connection stays usable.
func noStop() bool { return true }

func (b *pooledBody) Read(p []byte) (int, error) {
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

func (b *pooledBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *pooledBody) finish(clean bool) {
	b.done = true
	// stop reports false when the client already went away and the
	// deadline was set: the connection is no longer usable.
	if b.stop() && clean && b.reusable {
		b.t.put(b.c)
		return
	}
	b.c.Close()
}
