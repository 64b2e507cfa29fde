//go:build unix

package h1

import "syscall"

// canSendRaw: rawWrite works on this platform.
const canSendRaw = true

// rawWrite writes p to the non-blocking socket fd once.
func rawWrite(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }
