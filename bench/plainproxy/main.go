// Command plainproxy is the Go reference point of the benchmark: a plain
// httputil.ReverseProxy with round-robin over fixed backends and the same
// upstream transport settings as Switchyard, nothing else (no routing, no
// health, no retries).
//
//	plainproxy -listen 127.0.0.1:8080 -backends 127.0.0.1:9001,127.0.0.1:9002
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	backends := flag.String("backends", "", "comma-separated host:port list")
	flag.Parse()

	var addrs []string
	for _, a := range strings.Split(*backends, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		fmt.Fprintln(os.Stderr, "plainproxy: -backends is empty")
		os.Exit(2)
	}
	logger := log.New(os.Stderr, "plainproxy: ", 0)
	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addrs[(next.Add(1)-1)%uint64(len(addrs))]
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableCompression:    true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away (wrk stopping): nothing to log, as in Switchyard
			}
			logger.Printf("proxy error: %v", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		<-c
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "plainproxy:", err)
		os.Exit(1)
	}
}
