package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// config is the harness's command line, checked by parseFlags.
type config struct {
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	conns      []int
	targets    []string
	proxyCPU   int // -1: no pinning
	loadCPU    int
	wrkThreads int
	bin        string
	configs    string
	out        string
	raw        string
	wrk        string
	nginx      string
	haproxy    string
	caddy      string
	keep       bool
	backend    string // backendMinimal or backendNetHTTP: how bench/backend answers
	tracing    bool   // the tracing cost rows (tracingTargets) instead of allTargets
	paired     bool   // -tracing -paired: few rows, many short rounds, order varied per round
	sideBySide bool   // -paired -side-by-side: each row at the same time as off, on the same CPU
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds (every target once per round and connection count)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured length of each run (whole seconds)")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each run, same connections (whole seconds; 0 skips)")
	conns := fs.String("conns", "1,64,256", "comma-separated wrk connection counts")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated subset of the targets, which always run in this order: "+strings.Join(allTargets, ","))
	fs.IntVar(&c.proxyCPU, "proxy-cpu", 0, "CPU for the proxy under test (-1: no pinning)")
	fs.IntVar(&c.loadCPU, "load-cpu", 1, "CPU for wrk, the backends and the OTLP sink")
	fs.IntVar(&c.wrkThreads, "wrk-threads", 1, "wrk threads (the load side has one CPU)")
	fs.StringVar(&c.bin, "bin", "", "directory with prebuilt switchyard, backend, plainproxy and otlpsink (empty: build them)")
	fs.StringVar(&c.configs, "configs", filepath.Join("bench", "configs"), "directory with the proxy config templates")
	fs.StringVar(&c.out, "out", filepath.Join("bench", "results", "latest.md"), "markdown report file (empty: stdout only)")
	fs.StringVar(&c.raw, "raw", filepath.Join("bench", "results", "latest.raw"), "file for wrk's full output (empty: none)")
	fs.StringVar(&c.wrk, "wrk", "wrk", "wrk program")
	fs.StringVar(&c.nginx, "nginx", "nginx", "nginx program")
	fs.StringVar(&c.haproxy, "haproxy", "haproxy", "haproxy program")
	fs.StringVar(&c.caddy, "caddy", defaultCaddy(), "caddy program")
	fs.BoolVar(&c.tracing, "tracing", false, "measure what tracing costs: Switchyard off/0%/1%/failures+1%/100% and Caddy off/1%/100% "+
		"(then -targets picks among "+strings.Join(tracingTargetNames(), ",")+"; -conns defaults to 64, -out and -raw to bench/results/tracing.*)")
	fs.BoolVar(&c.paired, "paired", false, "with -tracing: only "+strings.Join(pairedTargets, ",")+" in many short rounds (-rounds 24 -duration 3s -warmup 1s unless given), "+
		"the order changed every round, and the median of same-round ratios to off with a 95% confidence interval (-out and -raw default to bench/results/tracing-paired.*)")
	fs.BoolVar(&c.sideBySide, "side-by-side", false, "with -paired: run each row at the same time as switchyard-off, both proxies on the proxy CPU and each under its own wrk, "+
		"so that what the host does to that CPU meanwhile falls on both (-out and -raw default to bench/results/tracing-side-by-side.*)")
	fs.StringVar(&c.backend, "backend", backendMinimal, "backends: "+backendMinimal+" (HTTP/1.1 written by hand on a raw TCP listener) or "+backendNetHTTP+
		" (net/http servers); with "+backendNetHTTP+", -out and -raw default to files of their own (latest-nethttp.md)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (generated configs, process logs) for debugging")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.paired {
		applyPairedDefaults(fs, &c)
	}
	if c.rounds < 1 {
		return c, fmt.Errorf("-rounds %d: want at least 1", c.rounds)
	}
	if c.duration < time.Second || c.duration%time.Second != 0 {
		return c, fmt.Errorf("-duration %s: want whole seconds, at least 1s (wrk takes no fractions)", c.duration)
	}
	if c.warmup < 0 || c.warmup%time.Second != 0 {
		return c, fmt.Errorf("-warmup %s: want whole seconds or 0", c.warmup)
	}
	if c.wrkThreads < 1 {
		return c, fmt.Errorf("-wrk-threads %d: want at least 1", c.wrkThreads)
	}
	if c.backend != backendMinimal && c.backend != backendNetHTTP {
		return c, fmt.Errorf("-backend %q: want %s or %s", c.backend, backendMinimal, backendNetHTTP)
	}
	if c.paired && !c.tracing {
		return c, fmt.Errorf("-paired goes with -tracing")
	}
	if c.sideBySide && !c.paired {
		return c, fmt.Errorf("-side-by-side goes with -tracing -paired")
	}
	if c.tracing && !isSet(fs, "conns") {
		*conns = "64"
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-conns %q: want positive whole numbers", *conns)
		}
		c.conns = append(c.conns, n)
	}
	names := allTargets
	if c.tracing {
		names = tracingTargetNames()
		applyTracingDefaults(fs, &c, targets)
	}
	applyBackendDefaults(fs, &c)
	known := map[string]bool{}
	for _, t := range names {
		known[t] = true
	}
	for _, s := range strings.Split(*targets, ",") {
		s = strings.TrimSpace(s)
		if !known[s] {
			return c, fmt.Errorf("-targets: unknown target %q (known: %s)", s, strings.Join(names, ","))
		}
		c.targets = append(c.targets, s)
	}
	return c, nil
}

// defaultCaddy prefers the pinned Caddy that scripts/bench.sh installs.
func defaultCaddy() string {
	p := filepath.Join(".tools", "bin", "caddy")
	if abs, err := filepath.Abs(p); err == nil && isExecutable(abs) {
		return abs
	}
	return "caddy"
}

// applyTracingDefaults gives -tracing its own defaults for the flags the
// command line did not set: every tracing row and its own report files.
func applyTracingDefaults(fs *flag.FlagSet, c *config, targets *string) {
	name, rows := "tracing", tracingTargetNames()
	if c.paired {
		name, rows = "tracing-paired", pairedTargets
	}
	if c.sideBySide {
		name = "tracing-side-by-side"
	}
	if !isSet(fs, "targets") {
		*targets = strings.Join(rows, ",")
	}
	if !isSet(fs, "out") {
		c.out = filepath.Join("bench", "results", name+".md")
	}
	if !isSet(fs, "raw") {
		c.raw = filepath.Join("bench", "results", name+".raw")
	}
}

// pairedTargets are the rows of -tracing -paired: the rows whose targets
// are a few percent (0%, the two 1% rows) and their base, so that many
// short rounds fit in a quarter of an hour.
var pairedTargets = []string{"switchyard-off", "switchyard-0%", "switchyard-1%", "switchyard-failures+1%"}

// applyPairedDefaults gives -paired more, shorter rounds unless the command
// line set them: a same-round ratio is a pair of runs a few seconds apart,
// and the spread of many such pairs is what bounds the median.
func applyPairedDefaults(fs *flag.FlagSet, c *config) {
	if !isSet(fs, "rounds") {
		c.rounds = 24
	}
	if !isSet(fs, "duration") {
		c.duration = 3 * time.Second
	}
	if !isSet(fs, "warmup") {
		c.warmup = time.Second
	}
}

// Backend modes (-backend), passed to bench/backend as -mode.
const (
	backendMinimal = "minimal"
	backendNetHTTP = "nethttp"
)

// applyBackendDefaults gives the report files of a run on other backends
// than the default ones a name of their own, "latest-nethttp.md" beside
// "latest.md", unless the command line named them.
func applyBackendDefaults(fs *flag.FlagSet, c *config) {
	if c.backend == backendMinimal {
		return
	}
	for _, f := range []struct {
		name string
		path *string
	}{{"out", &c.out}, {"raw", &c.raw}} {
		if !isSet(fs, f.name) && *f.path != "" {
			ext := filepath.Ext(*f.path)
			*f.path = strings.TrimSuffix(*f.path, ext) + "-" + c.backend + ext
		}
	}
}

// isSet says whether the command line set the flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
