// Package rawhttp is the raw HTTP/1.1 peers of the in-process benchmarks:
// a backend and a client exchange that read and write fixed bytes on
// keep-alive connections and allocate nothing per request, so that what a
// benchmark counts (allocations, instructions) is the gateway's alone.
package rawhttp

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Backend answers every request on every connection with what answer
// returns for it, and returns its address; everything it starts is
// stopped when tb's test ends. answer runs on the connections' goroutines
// and must be safe for concurrent use. Requests are read up to their
// blank line (no bodies).
func Backend(tb testing.TB, answer func() []byte) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, answer)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// serve answers the requests on c until it fails or a head overflows the
// buffer.
func serve(c net.Conn, answer func() []byte) {
	buf := make([]byte, 4096)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		for {
			i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			n = copy(buf, buf[i+4:n])
			if _, err := c.Write(answer()); err != nil {
				return
			}
		}
		if n == len(buf) {
			return
		}
	}
}

// Exchange writes req on c and reads the answer into buf, up to the body
// "ok\r\n" that ends every answer of the benchmarks' backends, and returns
// it.
func Exchange(tb testing.TB, c net.Conn, req, buf []byte) []byte {
	if _, err := c.Write(req); err != nil {
		tb.Fatal(err)
	}
	n := 0
	for n < 4 || string(buf[n-4:n]) != "ok\r\n" {
		m, err := c.Read(buf[n:])
		if err != nil {
			tb.Fatal(err)
		}
		n += m
	}
	return buf[:n]
}
