package h1

import (
	"syscall"
	"unsafe"
)

// peekQuiet looks at fd without blocking and without consuming anything:
// it reports whether the connection is still quiet, neither data nor EOF
// nor an error waiting. One recvfrom(MSG_PEEK|MSG_DONTWAIT) call, no
// allocation.
func peekQuiet(fd uintptr) bool {
	var b byte
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n) < 0 && (errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK)
}
