//go:build unix && !linux

package h1

import "syscall"

// peekQuiet is the portable form of the Linux check: recvfrom with
// MSG_PEEK and MSG_DONTWAIT.
func peekQuiet(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
}
