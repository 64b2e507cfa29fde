package h1

import (
	"syscall"
	"unsafe"
)

// check looks at fd without blocking and without consuming anything: it
// reports whether the connection is still quiet, neither data nor EOF nor
// an error waiting. One recvfrom(MSG_PEEK|MSG_DONTWAIT) call, no
// allocation; for syscall.RawConn.Read.
func (p *idlePeek) check(fd uintptr) bool {
	var b byte
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	p.quiet = int(n) < 0 && (errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK)
	return true // never wait for readiness
}
