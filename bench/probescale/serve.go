package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// serveListeners opens n loopback listeners answering 200 "ok" with
// keep-alive, prints their addresses, then answers "stats" lines on stdin
// with "accepted open" until stdin closes.
func serveListeners(n int) {
	var accepted, open atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			w.Write([]byte("ok"))
		}),
		ReadHeaderTimeout: 10 * time.Second, // a stuck client cannot hold a connection forever
		IdleTimeout:       5 * time.Minute,  // longer than the measurement: idle closes would count as reconnects
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				accepted.Add(1)
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr())
		go srv.Serve(ln)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println(accepted.Load(), open.Load())
	}
}
