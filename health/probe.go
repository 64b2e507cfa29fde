package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard-gw/switchyard/h1"
)

// Probes speak HTTP/1.1 over connections the checker keeps itself, the way
// Envoy's health checker does: an instance that allows keep-alive is probed
// over the same connection every time, and an idle connection costs a
// socket, not goroutines or buffers. The response is read by net/http's own
// parser (http.ReadResponse); nothing here parses bytes.

const (
	// idleTimeout closes connections unused this long (an address that left
	// discovery, or an interval longer than any server keeps a connection).
	idleTimeout = 90 * time.Second
	// maxProbeBody is read from a response body; a longer body is not read
	// to the end and its connection is closed.
	maxProbeBody = 64 << 10
)

// probeRequest is the request a probe writes, or nil when addr and path do
// not make a valid URL (the probe then fails with the parse error).
func probeRequest(addr, path string) []byte {
	u, err := url.Parse("http://" + addr + path)
	if err != nil || u.Host == "" {
		return nil
	}
	return []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: switchyard-health/1\r\nAccept: */*\r\n\r\n")
}

// connPool keeps idle probe connections per address. Safe for concurrent use.
type connPool struct {
	dialer net.Dialer
	opened atomic.Int64 // connections dialled so far
	// maxIdle bounds the idle connections kept per address: the probes
	// that may be in flight at once. One is enough for an instance probed
	// every interval; more serve instances that share an address (several
	// registrations of one endpoint) probed at the same moment, which would
	// otherwise open and close connections at every burst.
	maxIdle int

	// readers lend response readers to exchanges; an idle connection
	// holds none.
	readers sync.Pool

	mu   sync.Mutex
	idle map[string][]idleConn // newest last
}

type idleConn struct {
	conn  net.Conn
	since time.Time
}

// get returns a connection to addr: an idle one that is still open and has
// nothing unread, else a new one. reused says which.
func (p *connPool) get(ctx context.Context, addr string) (conn net.Conn, reused bool, err error) {
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			break
		}
		ic := list[len(list)-1]
		list[len(list)-1] = idleConn{}
		if len(list) == 1 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = list[:len(list)-1]
		}
		p.mu.Unlock()
		if time.Since(ic.since) < idleTimeout && h1.AtBoundary(ic.conn) {
			return ic.conn, true, nil
		}
		ic.conn.Close()
	}
	conn, err = p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	p.opened.Add(1)
	return conn, false, nil
}

// put keeps conn for the next probe of addr. The caller vouches that conn is
// at a message boundary with nothing unread.
func (p *connPool) put(addr string, conn net.Conn) {
	p.mu.Lock()
	if p.idle == nil {
		p.idle = map[string][]idleConn{}
	}
	if len(p.idle[addr]) < p.maxIdle {
		p.idle[addr] = append(p.idle[addr], idleConn{conn, time.Now()})
		conn = nil
	}
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// sweep closes the connections idle since before now-idleTimeout; all of
// them when now is the zero time.
func (p *connPool) sweep(now time.Time) {
	var old []net.Conn
	p.mu.Lock()
	for addr, list := range p.idle {
		keep := list[:0]
		for _, ic := range list {
			if now.IsZero() || now.Sub(ic.since) >= idleTimeout {
				old = append(old, ic.conn)
			} else {
				keep = append(keep, ic)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = keep
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

// probe sends one check for t and returns nil when it passes: the
// service's own prober (gRPC, TLS, h2c), else an HTTP/1.1 GET over the
// Checker's kept connections. ctx ends the probe early (removal,
// shutdown); t.set.Timeout bounds it.
func (c *Checker) probe(ctx context.Context, t *probeTask) error {
	ctx, cancel := context.WithTimeout(ctx, t.set.Timeout)
	defer cancel()
	if t.set.prober != nil {
		return t.set.prober.probe(ctx, t.inst.Address, *t.set)
	}
	if t.request == nil {
		return fmt.Errorf("invalid probe URL %q", "http://"+t.inst.Address+t.set.Path)
	}
	for attempt := 0; ; attempt++ {
		conn, reused, err := c.pool.get(ctx, t.inst.Address)
		if err != nil {
			return probeError(err, t.set.Timeout)
		}
		status, keep, err := c.pool.exchange(ctx, conn, t.request)
		if err != nil {
			conn.Close()
			if reused && attempt == 0 && ctx.Err() == nil && closedBeforeAnswer(err) {
				continue // the server closed its idle end meanwhile: nothing was answered
			}
			return probeError(err, t.set.Timeout)
		}
		if keep {
			c.pool.put(t.inst.Address, conn)
		} else {
			conn.Close()
		}
		if !t.set.ExpectedStatus.Contains(status) {
			return fmt.Errorf("status %d (want %s)", status, t.set.ExpectedStatus)
		}
		return nil
	}
}

// exchange writes req on conn and reads the response. keep reports whether
// conn ended at a message boundary and the server allows another request.
func (p *connPool) exchange(ctx context.Context, conn net.Conn, req []byte) (status int, keep bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return 0, false, err
	}
	br, _ := p.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(nil, 4096)
	}
	br.Reset(conn)
	defer func() { br.Reset(nil); p.readers.Put(br) }()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false, err
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody+1))
	whole := n <= maxProbeBody
	resp.Body.Close()
	keep = whole && !resp.Close && resp.ProtoAtLeast(1, 1) && resp.StatusCode >= 200 && br.Buffered() == 0
	if keep && (!stop() || conn.SetDeadline(time.Time{}) != nil) {
		keep = false // cancelled while finishing: the deadline may be in the past
	}
	return resp.StatusCode, keep, nil
}

// closedBeforeAnswer reports whether err means the server closed the
// connection before answering, which on a reused connection is a race with
// its idle timeout rather than a verdict on the instance.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// probeError shortens a transport error to what an operator needs, read
// by h1.Classify and h1.Reason as the gateway reads its own: "timeout
// after 2s", "connection refused", "no such host", "EOF". The error is
// kept underneath for errors.Is.
func probeError(err error, timeout time.Duration) error {
	if h1.Classify(err).Timeout() {
		return &shortError{fmt.Sprintf("timeout after %s", timeout), err}
	}
	return &shortError{h1.Reason(err), err}
}

// shortError says msg and wraps err.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }
