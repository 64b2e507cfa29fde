package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/switchyard-gw/switchyard/internal/grpctest"
)

// runUpstream serves grpc-go's interop TestService (internal/grpctest) on
// listen until SIGTERM or SIGINT, and prints "ready <addr>" once listening.
func runUpstream(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("upstream listening on %s: %w", listen, err)
	}
	srv := grpctest.Serve(ln, grpctest.Options{Name: "bench"})
	fmt.Println("ready", srv.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Stop()
	return nil
}

// loadResult is what the load role prints as its last line, in JSON.
type loadResult struct {
	Calls  int64         `json:"calls"`
	Errors int64         `json:"errors"`
	Window time.Duration `json:"window"`
	P50    time.Duration `json:"p50"`
	P99    time.Duration `json:"p99"`
	Err    string        `json:"err,omitempty"` // first call error
}

// loadSpec shapes one load run.
type loadSpec struct {
	addr     string
	callers  int
	conns    int
	size     int // request and response payload bytes
	warmup   time.Duration
	duration time.Duration
}

// runLoad sends unary calls from spec.callers goroutines over spec.conns
// HTTP/2 connections. It waits until one call succeeds (the proxy has
// found its upstream healthy), runs the warm-up, prints "start", measures
// for spec.duration, prints "end" and then the loadResult. The lines let
// the parent sample the proxy's CPU time at exactly the window's edges.
func runLoad(spec loadSpec) error {
	clients := make([]testgrpc.TestServiceClient, spec.conns)
	for i := range clients {
		cc, err := grpc.NewClient("passthrough:///"+spec.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("client for %s: %w", spec.addr, err)
		}
		defer cc.Close()
		clients[i] = testgrpc.NewTestServiceClient(cc)
	}
	req := &testgrpc.SimpleRequest{ResponseSize: int32(spec.size), Payload: &testgrpc.Payload{Body: make([]byte, spec.size)}}
	if err := firstCall(clients, req); err != nil {
		return err
	}
	var (
		measuring sync.WaitGroup
		phase     = make(chan struct{}) // closed when the window starts
		stop      = make(chan struct{}) // closed when the window ends
		mu        sync.Mutex
		lats      []time.Duration
		res       loadResult
	)
	for i := 0; i < spec.callers; i++ {
		measuring.Add(1)
		go func(c testgrpc.TestServiceClient) {
			defer measuring.Done()
			own, calls, errs, first := caller(c, req, phase, stop)
			mu.Lock()
			defer mu.Unlock()
			lats = append(lats, own...)
			res.Calls += calls
			res.Errors += errs
			if res.Err == "" && first != nil {
				res.Err = first.Error()
			}
		}(clients[i%spec.conns])
	}
	time.Sleep(spec.warmup) // the warm-up runs while we wait; nothing to synchronise on
	fmt.Println("start")
	t0 := time.Now()
	close(phase)
	time.Sleep(spec.duration)
	close(stop)
	res.Window = time.Since(t0)
	fmt.Println("end")
	measuring.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	res.P50, res.P99 = percentile(lats, 0.50), percentile(lats, 0.99)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// caller calls until stop, recording the calls that started after phase
// closed. It returns their latencies, counts and the first error.
func caller(c testgrpc.TestServiceClient, req *testgrpc.SimpleRequest, phase, stop <-chan struct{}) (lats []time.Duration, calls, errs int64, first error) {
	lats = make([]time.Duration, 0, 1<<14)
	for {
		select {
		case <-stop:
			return lats, calls, errs, first
		default:
		}
		counted := closed(phase)
		t := time.Now()
		_, err := c.UnaryCall(context.Background(), req)
		d := time.Since(t)
		if !counted || closed(stop) {
			continue
		}
		if err != nil {
			errs++
			if first == nil {
				first = err
			}
			continue
		}
		calls++
		lats = append(lats, d)
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// firstCall polls every connection with a call until each succeeds, for
// at most 15 seconds: the proxies start probing their upstream only after
// they start listening.
func firstCall(clients []testgrpc.TestServiceClient, req *testgrpc.SimpleRequest) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range clients {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.UnaryCall(ctx, req, grpc.WaitForReady(true))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no successful call within 15s: %w", err)
			}
			time.Sleep(50 * time.Millisecond) // polling a proxy that is still starting
		}
	}
	return nil
}

var errNoResult = errors.New("load client printed no result")
