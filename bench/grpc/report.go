package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// figures are one target's per-round values of each column.
type figures struct {
	rate, p50, p99, cpuPerCall, perCPU, upPerCall []float64
	errors                                        int64
}

// figuresOf turns samples into per-round figures; a failed round (zero
// sample) contributes nothing, and a zero proxy CPU (direct) leaves the
// proxy columns empty.
func figuresOf(ss []sample) figures {
	var f figures
	for _, s := range ss {
		if s.Calls == 0 {
			continue
		}
		calls := float64(s.Calls)
		f.rate = append(f.rate, calls/s.Window.Seconds())
		f.p50 = append(f.p50, float64(s.P50)/float64(time.Microsecond))
		f.p99 = append(f.p99, float64(s.P99)/float64(time.Microsecond))
		f.upPerCall = append(f.upPerCall, float64(s.upCPU)/float64(time.Microsecond)/calls)
		f.errors += s.Errors
		if s.proxyCPU > 0 {
			f.cpuPerCall = append(f.cpuPerCall, float64(s.proxyCPU)/float64(time.Microsecond)/calls)
			f.perCPU = append(f.perCPU, calls/s.proxyCPU.Seconds())
		}
	}
	return f
}

// perRound returns one figure per round for a target, 0 where the round
// failed, so that ratios pair values from the same round.
func perRound(ss []sample, fig func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		if s.Calls > 0 {
			out[i] = fig(s)
		}
	}
	return out
}

func callsPerCPU(s sample) float64 {
	if s.proxyCPU <= 0 {
		return 0
	}
	return float64(s.Calls) / s.proxyCPU.Seconds()
}

func callRate(s sample) float64 { return float64(s.Calls) / s.Window.Seconds() }

// cell formats a spread as "median (min-max)" with the given verb.
func cell(vs []float64, verb string) string {
	if len(vs) == 0 {
		return "-"
	}
	s := spreadOf(vs)
	if len(vs) == 1 {
		return fmt.Sprintf(verb, s.med)
	}
	return fmt.Sprintf(verb+" ("+verb+"-"+verb+")", s.med, s.min, s.max)
}

func render(b *bench, res map[string][]sample, started, finished time.Time) string {
	cfg := b.cfg
	var w strings.Builder
	fmt.Fprintf(&w, "# gRPC unary calls through a proxy\n\n")
	fmt.Fprintf(&w, "`go run ./bench/grpc %s` (`make bench-grpc`), %s, %s to %s UTC.\n\n",
		strings.Join(os.Args[1:], " "), runtime.Version(), started.UTC().Format("2006-01-02 15:04"), finished.UTC().Format("15:04"))
	fmt.Fprintf(&w, "grpc-go interop `UnaryCall`, %d-byte request and response payload; %d concurrent callers over %d HTTP/2 connections (h2c); "+
		"%d rounds, each target once per round in the order %s, %s warm-up then %s measured. "+
		"The proxy runs alone on CPU %d with GOMAXPROCS=1, started afresh for each window; the load client and the upstream share CPU %d. "+
		"Figures are medians over the rounds with min-max in parentheses.\n\n",
		cfg.load.size, cfg.load.callers, cfg.load.conns, cfg.rounds, strings.Join(b.targets, ", "),
		cfg.load.warmup, cfg.load.duration, cfg.proxyCPU, cfg.loadCPU)
	w.WriteString("| target | calls/s | p50 µs | p99 µs | proxy CPU µs/call | calls per proxy CPU-s | upstream CPU µs/call | errors |\n")
	w.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, t := range b.targets {
		f := figuresOf(res[t])
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %d |\n", t,
			cell(f.rate, "%.0f"), cell(f.p50, "%.0f"), cell(f.p99, "%.0f"),
			cell(f.cpuPerCall, "%.1f"), cell(f.perCPU, "%.0f"), cell(f.upPerCall, "%.1f"), f.errors)
	}
	if sw, cd := res[tSwitchyard], res[tCaddy]; len(sw) > 0 && len(cd) > 0 {
		w.WriteString("\nSame-round ratios, switchyard / caddy (median, min-max):\n\n")
		fmt.Fprintf(&w, "- calls per proxy CPU-second: %s\n", cell(ratios(perRound(sw, callsPerCPU), perRound(cd, callsPerCPU)), "%.2f"))
		fmt.Fprintf(&w, "- calls/s: %s\n", cell(ratios(perRound(sw, callRate), perRound(cd, callRate)), "%.2f"))
	}
	w.WriteString("\nVersions:\n\n")
	for _, t := range b.targets {
		if v, ok := b.versions[t]; ok {
			fmt.Fprintf(&w, "- %s: %s\n", t, v)
		}
	}
	if len(b.notes) > 0 {
		w.WriteString("\nNotes:\n\n")
		for _, n := range b.notes {
			fmt.Fprintf(&w, "- %s\n", n)
		}
	}
	return w.String()
}
