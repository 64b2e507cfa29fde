// Command backend is the upstream for the benchmark harness: a tiny body on
// every path (including the /health that Switchyard probes), keep-alive, no
// logging, so that the proxy in front of it is what gets measured.
//
//	backend -listen 127.0.0.1:9001 -id 1 [-mode minimal|nethttp]
//
// The body names the backend ("ok1\n"), so the harness can check that a
// proxy balances over all of them; every backend's body has the same size.
//
// Two modes serve the same response. minimal (the default) answers HTTP/1.1
// written by hand on a raw TCP listener: a goroutine per connection reads
// request heads and writes a fixed response, one write for all the requests
// one read brought, so that the load side of the benchmark spends as little
// CPU as it can on the backends. nethttp is net/http's server, the backends
// of the first benchmarks.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	id := flag.String("id", "1", "backend id, returned in the body")
	mode := flag.String("mode", "minimal", "minimal: hand-written HTTP/1.1 on a raw TCP listener; nethttp: net/http's server")
	flag.Parse()

	body := []byte("ok" + *id + "\n")
	var err error
	switch *mode {
	case "minimal":
		err = serveMinimal(*listen, body)
	case "nethttp":
		err = serveNetHTTP(*listen, body)
	default:
		err = fmt.Errorf("-mode %q: want minimal or nethttp", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// onSignal calls stop on SIGINT or SIGTERM.
func onSignal(stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-c
		stop()
	}()
}

// serveMinimal runs the hand-written responder until a signal closes its
// listener.
func serveMinimal(addr string, body []byte) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	onSignal(func() { ln.Close() })
	return newResponder(body).serve(ln)
}

// serveNetHTTP runs net/http's server until a signal closes it.
func serveNetHTTP(addr string, body []byte) error {
	length := []string{fmt.Sprint(len(body))}
	ctype := []string{contentType}
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Setting the map directly avoids canonicalising on every request.
			h := w.Header()
			h["Content-Type"] = ctype
			h["Content-Length"] = length
			w.Write(body)
		}),
		// Loopback benchmark peers only; the timeouts just keep a stuck run
		// from holding connections forever.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	onSignal(func() { srv.Close() })
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
