// Command otlpsink is the OTLP/HTTP endpoint for the benchmark's
// "switchyard+otel1%" row: it accepts every POST (/v1/traces, /v1/metrics,
// /v1/logs), reads and drops the body and answers 200 with an empty protobuf
// message, which is a valid Export*ServiceResponse. GET /stats reports what
// arrived, so the harness can tell whether anything was exported at all.
//
//	otlpsink -listen 127.0.0.1:4318
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

type counts struct {
	mu       sync.Mutex
	requests map[string]int64 // by path
	bytes    int64
}

func main() {
	listen := flag.String("listen", "127.0.0.1:4318", "listen address")
	flag.Parse()

	c := &counts{requests: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		fmt.Fprintf(w, "bytes %d\n", c.bytes)
		for p, n := range c.requests {
			fmt.Fprintf(w, "requests %s %d\n", p, n)
		}
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		c.requests[r.URL.Path]++
		c.bytes += n
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		s := make(chan os.Signal, 1)
		signal.Notify(s, syscall.SIGINT, syscall.SIGTERM)
		<-s
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
}
