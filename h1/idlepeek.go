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
