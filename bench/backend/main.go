// Command backend is the upstream for the benchmark harness: a tiny body on
// every path (including the /health that Switchyard probes), keep-alive, no
// logging, so that the proxy in front of it is what gets measured.
//
//	backend -listen 127.0.0.1:9001 -id 1
//
// The body names the backend ("ok1\n"), so the harness can check that a
// proxy balances over all of them; every backend's body has the same size.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	id := flag.String("id", "1", "backend id, returned in the body")
	flag.Parse()

	body := []byte("ok" + *id + "\n")
	length := []string{fmt.Sprint(len(body))}
	ctype := []string{"text/plain; charset=utf-8"}
	srv := &http.Server{
		Addr: *listen,
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
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		<-c
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
