package h1

import (
	"net"
	"syscall"
)

// idlePeek tells whether an idle upstream connection is still at a message
// boundary with nothing unread: an upstream that sent anything while no
// request was outstanding (bytes after its response, an early EOF, a
// reset) has a connection no one may use again. Built once per
// connection, so that a check allocates nothing.
type idlePeek struct {
	rc    syscall.RawConn // nil: the connection cannot be checked
	fn    func(uintptr) bool
	quiet bool

	// The state of send, the peek folded with a request's write.
	sendFn  func(uintptr) bool
	out     []byte // what send writes
	sent    int    // bytes of out written
	werr    error  // the write's error, EAGAIN and EINTR excepted
	called  bool   // sendFn ran at least once
	waiting bool   // out was written in full: sendFn waits for readability
}

func newIdlePeek(c net.Conn) *idlePeek {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &idlePeek{rc: rc}
	p.fn = p.check
	p.sendFn = p.sendCheck
	return p
}

// quietNow reports whether nothing is waiting to be read on the
// connection. A nil idlePeek (a connection that is not a socket, in tests)
// reports true.
func (p *idlePeek) quietNow() bool {
	if p == nil {
		return true
	}
	p.quiet = false
	if err := p.rc.Read(p.fn); err != nil {
		return false // closed, or a deadline has passed: unusable
	}
	return p.quiet
}

// check is the callback for syscall.RawConn.Read: it records peekQuiet's
// answer and never waits for readiness.
func (p *idlePeek) check(fd uintptr) bool {
	p.quiet = peekQuiet(fd)
	return true
}

// sendResult is what send did.
type sendResult struct {
	// checked: the peek ran; quiet is its answer. A connection that was
	// not quiet got nothing written.
	checked, quiet bool
	sent           int   // bytes written; the caller writes the rest
	err            error // the write's error (an errno), EAGAIN and EINTR excepted
}

// send is the idle peek, the request's write and the wait for the
// response folded into one syscall.RawConn.Read: peek, write b when the
// connection is quiet, then wait for readability without a read that
// would only find nothing yet. That saves the read per exchange that
// returns EAGAIN before the goroutine parks.
//
// Why no wake-up can be missed: RawConn.Read forgets every readiness
// event from before it started, which is safe only when a read (here the
// peek) follows that found the socket empty. Every byte of the response
// arrives after the peek, so its readiness event comes after the
// forgetting and either wakes the wait or lets it return at once.
//
// A connection that is not a socket, a platform without the raw write or
// a RawConn that fails before the peek ran report checked false: then
// the caller peeks and writes the ordinary way.
func (p *idlePeek) send(b []byte) sendResult {
	if p == nil || !canSendRaw {
		return sendResult{}
	}
	p.out, p.sent, p.werr, p.called, p.waiting, p.quiet = b, 0, nil, false, false, false
	// An error after the wait (a deadline, a close) is the next read's to
	// report, as the ordinary read would; one before the peek leaves
	// checked false.
	_ = p.rc.Read(p.sendFn)
	r := sendResult{checked: p.called, quiet: p.quiet, sent: p.sent, err: p.werr}
	p.out, p.werr = nil, nil
	return r
}

// sendCheck is the callback for send.
func (p *idlePeek) sendCheck(fd uintptr) bool {
	if p.waiting {
		return true // woken: readable, and the reader reads
	}
	p.called = true
	if p.quiet = peekQuiet(fd); !p.quiet {
		return true
	}
	n, err := rawWrite(fd, p.out)
	if n > 0 {
		p.sent = n
	}
	if err != nil && err != syscall.EAGAIN && err != syscall.EINTR {
		p.werr = err
	}
	if p.werr != nil || p.sent < len(p.out) {
		return true // the caller writes the rest, or reports the error
	}
	p.waiting = true
	return false
}

// AtBoundary reports whether an idle connection is still open and has
// nothing unread: a byte nobody asked for, the peer's FIN or a pending
// error means it must not carry another request. It neither blocks nor
// consumes anything. A connection that is not a socket cannot be checked
// and is reported as not at a boundary. The connection must not be in use
// by another goroutine.
func AtBoundary(conn net.Conn) bool {
	p := newIdlePeek(conn)
	return p != nil && p.quietNow()
}
