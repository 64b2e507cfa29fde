//go:build !unix

package h1

// peekQuiet cannot peek here: an idle connection is trusted, and a
// connection that turns out closed fails its next exchange.
func peekQuiet(uintptr) bool { return true }

// canSendRaw is false: requests are written through net.Conn.
const canSendRaw = false

func rawWrite(uintptr, []byte) (int, error) { return 0, nil }
