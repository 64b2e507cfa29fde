//go:build unix

package health

import "syscall"

// peekNothing reports whether the socket fd has nothing to read and is not
// closed by the peer, without consuming anything or blocking.
func peekNothing(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}
