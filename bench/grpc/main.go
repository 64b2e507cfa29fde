// Command grpc measures gRPC unary calls through Switchyard and through
// Caddy, each a separate process pinned to one CPU, next to a direct row
// with no proxy, in one run (issue 16). The upstream is grpc-go's interop
// TestService (internal/grpctest) in its own process; the load client is
// this program too, run as a child. Rounds interleave the targets so that
// background noise hits them alike.
//
//	go run ./bench/grpc -rounds 3 -duration 10s -warmup 2s
//
// Run it from the repository root; `make bench-grpc` does. Every process it
// starts is stopped by PID when it ends, on error and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	role      string // "" (the benchmark), "upstream" or "load": the children
	listen    string // upstream
	load      loadSpec
	rounds    int
	targets   []string
	caddy     string
	switchBin string // a built switchyard binary; "" builds one
	proxyCPU  int
	loadCPU   int
	out       string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("grpc", flag.ContinueOnError)
	fs.StringVar(&c.role, "role", "", "internal: upstream or load (the benchmark runs itself in these roles)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "upstream role: address to listen on")
	fs.StringVar(&c.load.addr, "addr", "", "load role: address to call")
	fs.IntVar(&c.load.callers, "callers", 32, "concurrent unary callers")
	fs.IntVar(&c.load.conns, "conns", 4, "HTTP/2 connections the callers share")
	fs.IntVar(&c.load.size, "size", 100, "request and response payload bytes")
	fs.DurationVar(&c.load.warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	fs.DurationVar(&c.load.duration, "duration", 10*time.Second, "measured window per target and round")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every target once")
	targets := fs.String("targets", "direct,switchyard,caddy", "targets, in round order")
	fs.StringVar(&c.caddy, "caddy", ".tools/bin/caddy", "Caddy binary (scripts/bench.sh --install-only builds it); the caddy row is skipped when missing")
	fs.StringVar(&c.switchBin, "switchyard", "", "switchyard binary; empty builds ./cmd/switchyard as make bench does")
	fs.IntVar(&c.proxyCPU, "proxy-cpu", 0, "CPU the proxy under test is pinned to")
	fs.IntVar(&c.loadCPU, "load-cpu", 1, "CPU the load client and the upstream are pinned to")
	fs.StringVar(&c.out, "out", "bench/results/grpc.md", "where the table is written; empty: stdout only")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.targets = strings.Split(*targets, ",")
	for _, t := range c.targets {
		if t != tDirect && t != tSwitchyard && t != tCaddy {
			return c, fmt.Errorf("-targets: unknown target %q (want direct, switchyard or caddy)", t)
		}
	}
	switch {
	case c.load.callers < 1 || c.load.conns < 1 || c.load.conns > c.load.callers:
		return c, fmt.Errorf("-callers %d -conns %d: want 1 <= conns <= callers", c.load.callers, c.load.conns)
	case c.rounds < 1:
		return c, fmt.Errorf("-rounds %d: want at least 1", c.rounds)
	case c.load.duration <= 0 || c.load.warmup < 0:
		return c, fmt.Errorf("-duration %s -warmup %s: want a positive window", c.load.duration, c.load.warmup)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		switch cfg.role {
		case "upstream":
			err = runUpstream(cfg.listen)
		case "load":
			err = runLoad(cfg.load)
		case "":
			err = run(cfg)
		default:
			err = fmt.Errorf("-role %q: want upstream or load", cfg.role)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/grpc:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "switchyard-bench-grpc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{cfg: cfg, tmp: tmp, procs: &procs{}}
	defer b.procs.stopAll() // runs before RemoveAll
	go func() {
		<-ctx.Done()
		b.procs.stopAll() // a child's exit ends the run with an error
	}()
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	started := time.Now()
	res, err := b.rounds(ctx)
	if err != nil {
		return err
	}
	report := render(b, res, started, time.Now())
	fmt.Print(report)
	if cfg.out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(cfg.out, []byte(report), 0o644)
}
