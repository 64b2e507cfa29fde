// Command harness benchmarks Switchyard side by side with nginx, HAProxy,
// Caddy, a plain httputil.ReverseProxy and a direct-to-backend floor, on one
// machine in one run (issue 6). scripts/bench.sh installs the tools and runs
// it; see docs/benchmark.md for the method.
//
//	go run ./bench/harness -rounds 1 -duration 3s -conns 64
//
// Run it from the repository root. Everything listens on 127.0.0.1; every
// process the harness starts is stopped by PID when it ends, on error and
// on Ctrl-C, and its temporary directory is removed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// bench is one harness run. Used from the main goroutine only.
type bench struct {
	cfg          config
	tmp          string // removed at the end
	bin          string // switchyard, backend, plainproxy, otlpsink
	procs        *procs
	backendAddrs []string
	sinkAddr     string
	script       string // wrk Lua script
	raw          io.Writer
	seq          int
	notes        []string
}

func (b *bench) env() []string { return cleanEnv() }

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run(cfg config) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the harness at once (children get Pdeathsig)
	}()

	if _, err := os.Stat(filepath.Join(cfg.configs, "nginx.conf.tmpl")); err != nil {
		return fmt.Errorf("config templates not found in %s: run from the repository root or pass -configs", cfg.configs)
	}
	tmp, err := os.MkdirTemp("", "switchyard-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintln(os.Stderr, "harness: kept", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	b := &bench{cfg: cfg, tmp: tmp, bin: cfg.bin, procs: &procs{}}
	defer b.procs.stopAll() // runs before RemoveAll

	closeRaw, err := b.prepare(ctx)
	if err != nil {
		return err
	}
	defer closeRaw()
	host := hostInfo()
	targets, err := b.startTargets(ctx)
	if err != nil {
		return err
	}
	started := time.Now()
	res, err := b.rounds(ctx, targets)
	if err != nil {
		return err
	}
	if b.sinkAddr != "" {
		b.notes = append(b.notes, "OTLP sink received: "+b.sinkStats())
	}
	render := renderReport
	if cfg.tracing {
		render = renderTracingReport
	}
	report := render(reportInput{
		host:     host,
		cfg:      cfg,
		pinned:   cfg.proxyCPU >= 0,
		targets:  targets,
		wrk:      wrkVersion(b.cfg.wrk),
		results:  res,
		notes:    b.notes,
		started:  started,
		finished: time.Now(),
	})
	fmt.Print(report)
	return writeReport(cfg.out, report)
}

// prepare finds wrk, checks CPU pinning, builds the programs unless -bin
// names them, writes wrk's report script and opens the raw output file.
// The returned function closes that file.
func (b *bench) prepare(ctx context.Context) (closeRaw func(), err error) {
	closeRaw = func() {}
	if b.cfg.wrk, err = lookTool(b.cfg.wrk); err != nil {
		return closeRaw, err
	}
	b.checkPinning()
	if b.bin == "" {
		if err := b.build(ctx); err != nil {
			return closeRaw, err
		}
	}
	b.script = filepath.Join(b.tmp, "report.lua")
	if err := os.WriteFile(b.script, []byte(wrkScript), 0o644); err != nil {
		return closeRaw, err
	}
	if b.cfg.raw != "" {
		f, err := os.Create(b.cfg.raw)
		if err != nil {
			return closeRaw, err
		}
		b.raw = f
		closeRaw = func() { f.Close() }
	}
	return closeRaw, nil
}

// startTargets starts the backends (and the OTLP sink when a target needs
// it) and returns the targets that can run; the others become notes.
func (b *bench) startTargets(ctx context.Context) ([]target, error) {
	if err := b.startBackends(ctx); err != nil {
		return nil, err
	}
	targets, skipped := b.targets()
	b.notes = append(b.notes, skipped...)
	for _, s := range skipped {
		fmt.Fprintln(os.Stderr, "harness:", s)
	}
	if len(targets) == 0 {
		return nil, errors.New("no target can run")
	}
	if needsSink(targets) {
		if err := b.startSink(ctx); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// rounds measures every target once per round and connection count,
// interleaved. A failed run becomes a note; an interrupt ends it all.
func (b *bench) rounds(ctx context.Context, targets []target) (*results, error) {
	cfg := b.cfg
	if cfg.sideBySide {
		return b.sideBySideRounds(ctx, targets)
	}
	res := newResults(targets, cfg.conns, cfg.rounds)
	for r := 0; r < cfg.rounds; r++ {
		for _, c := range cfg.conns {
			order := targets
			if cfg.paired {
				order = roundOrder(targets, r)
			}
			for _, t := range order {
				if b.raw != nil {
					fmt.Fprintf(b.raw, "\n### round %d, %s, %d connections\n", r+1, t.name, c)
				}
				s, err := b.measure(ctx, t, c)
				if ctx.Err() != nil {
					return nil, errInterrupted
				}
				prefix := fmt.Sprintf("[round %d/%d] %3d conns  %-18s", r+1, cfg.rounds, c, t.name)
				if err != nil {
					b.failed(prefix, fmt.Sprintf("round %d, %s, %d connections", r+1, t.name, c), err)
					continue
				}
				res.put(t.name, c, r, s)
				fmt.Fprintf(os.Stderr, "%s %s\n", prefix, s)
			}
		}
	}
	return res, nil
}

var errInterrupted = errors.New("interrupted; every process started was stopped")

// failed reports a run that failed, on stderr after its progress prefix
// and as a note of the report naming what ran.
func (b *bench) failed(prefix, what string, err error) {
	fmt.Fprintf(os.Stderr, "%s FAILED: %v\n", prefix, err)
	b.notes = append(b.notes, fmt.Sprintf("%s failed: %s", what, oneLine(err.Error())))
}

// sideBySideRounds measures, in every round, each row at the same time as
// switchyard-off (measurePair), the rows in the order roundOrder gives.
// Each pair is a round of its own in the results (rounds × rows slots),
// holding off and that row: same-round ratios are then ratios of two
// processes measured over the same seconds on the same CPU.
func (b *bench) sideBySideRounds(ctx context.Context, targets []target) (*results, error) {
	cfg := b.cfg
	var base *target
	var rows []target
	for i, t := range targets {
		if t.name == pairedTargets[0] {
			base = &targets[i]
		} else {
			rows = append(rows, t)
		}
	}
	if base == nil || len(rows) == 0 {
		return nil, fmt.Errorf("-side-by-side wants %s and at least one other row", pairedTargets[0])
	}
	k := len(rows)
	res := newResults(targets, cfg.conns, cfg.rounds*k)
	for r := 0; r < cfg.rounds; r++ {
		for _, c := range cfg.conns {
			for i, t := range roundOrder(rows, r) {
				slot := r*k + i
				so, st, err := b.measurePair(ctx, *base, t, c)
				if ctx.Err() != nil {
					return nil, errInterrupted
				}
				prefix := fmt.Sprintf("[round %d/%d] %3d conns  %-18s beside off", r+1, cfg.rounds, c, t.name)
				if err != nil {
					b.failed(prefix, fmt.Sprintf("round %d, %s beside off, %d connections", r+1, t.name, c), err)
					continue
				}
				res.put(base.name, c, slot, so)
				res.put(t.name, c, slot, st)
				fmt.Fprintf(os.Stderr, "%s %s | off %s\n", prefix, st, so)
			}
		}
	}
	return res, nil
}

// roundOrder is the order of targets in round r of a -paired run: rotated
// by r, and reversed in every other cycle of rotations, so that each row
// runs as often before as after each other row (with three rows, the six
// orders in turn) and a drift of the machine within a round cancels out.
func roundOrder(targets []target, r int) []target {
	k := len(targets)
	out := make([]target, 0, k)
	for i := range k {
		out = append(out, targets[(i+r)%k])
	}
	if (r/k)%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// keptMarker starts the part of a report file written by hand (notes,
// figures from other commands): a new report keeps it, from the marker
// on, after its own text.
const keptMarker = "<!-- written by hand below: the harness keeps it -->"

// writeReport writes report to path, creating its directory, with the
// part of the file that was there from keptMarker on; "" writes nothing.
func writeReport(path, report string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil {
		if i := strings.Index(string(old), keptMarker); i >= 0 {
			report = strings.TrimRight(report, "\n") + "\n\n" + string(old[i:])
		}
	}
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "harness: wrote", path)
	return nil
}

// checkPinning turns pinning off, with a note, where it cannot work.
func (b *bench) checkPinning() {
	c := &b.cfg
	if c.proxyCPU < 0 {
		c.loadCPU = -1
		return
	}
	why := ""
	switch {
	case runtime.NumCPU() < 2:
		why = fmt.Sprintf("only %d CPU available", runtime.NumCPU())
	case c.proxyCPU == c.loadCPU:
		why = "-proxy-cpu equals -load-cpu"
	case c.loadCPU < 0:
		why = "-load-cpu is negative"
	}
	if why == "" {
		if _, err := exec.LookPath("taskset"); err != nil {
			why = "taskset not found"
		}
	}
	if why != "" {
		b.notes = append(b.notes, "no CPU pinning: "+why)
		fmt.Fprintln(os.Stderr, "harness: no CPU pinning:", why)
		c.proxyCPU, c.loadCPU = -1, -1
	}
}

// build compiles the Go programs the harness runs into its temp directory.
func (b *bench) build(ctx context.Context) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("go.mod not found: run from the repository root or pass -bin")
	}
	b.bin = filepath.Join(b.tmp, "bin")
	for name, pkg := range map[string]string{
		"switchyard": "./cmd/switchyard",
		"backend":    "./bench/backend",
		"plainproxy": "./bench/plainproxy",
		"otlpsink":   "./bench/otlpsink",
	} {
		fmt.Fprintln(os.Stderr, "harness: building", pkg)
		args := []string{"build", "-o", filepath.Join(b.bin, name)}
		if name == "switchyard" || name == "plainproxy" {
			// The proxies are built as shipped (deployments/Dockerfile),
			// as scripts/bench.sh does.
			args = append(args, "-trimpath", "-ldflags=-s -w")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	return nil
}

// startBackends starts three backends on the load CPU, in the -backend
// mode, and waits for each to answer with its own body.
func (b *bench) startBackends(ctx context.Context) error {
	for i := 1; i <= 3; i++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		name := "backend" + itoa(i)
		p, err := b.procs.start(b.tmp, name, b.cfg.loadCPU, append(b.env(), "GOMAXPROCS=1"),
			filepath.Join(b.bin, "backend"), "-listen", addr, "-id", itoa(i), "-mode", b.cfg.backend)
		if err != nil {
			return err
		}
		if err := waitBalanced(ctx, "http://"+addr+"/", 1, p); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b.backendAddrs = append(b.backendAddrs, addr)
	}
	return nil
}

// startSink starts the OTLP sink for the switchyard+otel1% row.
func (b *bench) startSink(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	p, err := b.procs.start(b.tmp, "otlpsink", b.cfg.loadCPU, append(b.env(), "GOMAXPROCS=1"),
		filepath.Join(b.bin, "otlpsink"), "-listen", addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/stats")
		if err == nil {
			resp.Body.Close()
			b.sinkAddr = addr
			return nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("OTLP sink did not start: %v\n%s", err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sinkStats summarises what the OTLP sink received.
func (b *bench) sinkStats() string {
	resp, err := http.Get("http://" + b.sinkAddr + "/stats")
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "requests":
			parts = append(parts, fmt.Sprintf("%s POST %s", f[2], f[1]))
		case len(f) == 2 && f[0] == "bytes":
			parts = append(parts, f[1]+" bytes")
		}
	}
	if len(parts) <= 1 {
		return "nothing (no trace or metric export reached it)"
	}
	return strings.Join(parts, ", ")
}

// oneLine squeezes whitespace and cuts s to 300 bytes, for report notes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
