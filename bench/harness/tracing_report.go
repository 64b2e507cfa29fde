package main

import (
	"fmt"
	"strings"
	"time"
)

// addedCPU summarizes, over the rounds where both ran at conns, the CPU
// µs/request that name adds over base in the same round.
func (r *results) addedCPU(conns int, name, base string) spread {
	var v []float64
	for round := 0; round < r.rounds; round++ {
		a, ok1 := r.get(name, conns, round)
		b, ok2 := r.get(base, conns, round)
		if ok1 && ok2 {
			v = append(v, us(a.cpuPerReq)-us(b.cpuPerReq))
		}
	}
	return summarize(v)
}

// addedRatio summarizes, per round, what num adds over numBase divided by
// what den adds over denBase: how a recorded request's cost compares across
// proxies. Rounds where the denominator's addition is not positive are
// left out.
func (r *results) addedRatio(conns int, num, numBase, den, denBase string) spread {
	added := func(name, base string) func(int) (float64, bool) {
		return func(round int) (float64, bool) {
			a, ok1 := r.get(name, conns, round)
			b, ok2 := r.get(base, conns, round)
			return us(a.cpuPerReq) - us(b.cpuPerReq), ok1 && ok2
		}
	}
	return r.ratio(conns, added(num, numBase), added(den, denBase))
}

// tracingGoal is one target of issue 15, checked against a median.
type tracingGoal struct {
	label string
	s     spread
	limit float64
	unit  string
}

// tracingGoals are issue 15's targets at conns: relative CPU per request
// for the unrecorded rows, and the added CPU of a recorded request against
// Caddy's.
func tracingGoals(r *results, conns int) []tracingGoal {
	rel := func(name, base string) spread {
		return r.ratio(conns, r.metricOf(name, conns, mCPU), r.metricOf(base, conns, mCPU))
	}
	return []tracingGoal{
		{"0% ≤ +1% CPU/req over off", rel("switchyard-0%", "switchyard-off"), 1.01, "×"},
		{"1% ≤ +3% CPU/req over off", rel("switchyard-1%", "switchyard-off"), 1.03, "×"},
		{"failures+1%, no failures, ≤ +3% CPU/req over off", rel("switchyard-failures+1%", "switchyard-off"), 1.03, "×"},
		{"100%: added µs ≤ 0.5× what 100% adds to Caddy", r.addedRatio(conns, "switchyard-100%", "switchyard-off", "caddy-100%", "caddy-off"), 0.5, "×"},
	}
}

// renderTracingReport is the report of a -tracing run.
func renderTracingReport(in reportInput) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	r := in.results
	w("# Tracing cost: Switchyard and Caddy\n\n")
	w("- **Date**: %s (%s of runs)\n", in.started.UTC().Format("2006-01-02 15:04 MST"), in.finished.Sub(in.started).Round(time.Second))
	w("- **Machine**: %d CPUs (%s), %s memory, Linux %s; load average at start %s\n", in.host.cpus, in.host.model, in.host.memory, in.host.kernel, in.host.loadavg)
	vers := map[string]string{}
	for _, t := range in.targets {
		if tt, ok := findTracingTarget(t.name); ok {
			vers[tt.proxy] = t.version
		}
	}
	w("- **Versions**: switchyard %s; caddy %s; wrk %s\n", vers[tSwitchyard], vers[tCaddy], in.wrk)
	pin := "not pinned"
	if in.pinned {
		pin = fmt.Sprintf("the proxy on CPU %d, wrk, the backends and the OTLP sink on CPU %d", in.cfg.proxyCPU, in.cfg.loadCPU)
	}
	order := "in the order " + strings.Join(r.names, ", ")
	if in.cfg.paired {
		order += ", rotated each round and reversed every other cycle (-paired)"
	}
	if in.cfg.sideBySide {
		order = "each traced row at the same time as switchyard-off (-side-by-side: both proxies on the proxy CPU, each under its own wrk, " +
			"measured over the same seconds; every pair counts as a round of its own), the rows in an order rotated each round and reversed every other cycle"
	}
	w("- **Method**: %d interleaved round(s), every row once per round %s; each run starts the proxy afresh "+
		"(GOMAXPROCS=1, built static as shipped), %s warm-up, %s measured with `wrk -t%d`; %s. "+
		"Traced rows export OTLP http/protobuf to the same local discarding sink (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`), "+
		"sampler from `OTEL_TRACES_SAMPLER`/`_ARG` (`traceidratio` 0, 0.01, 1; `failures+traceidratio` 0.01 with no failing request). "+
		"Caddy: its `tracing` directive (otelhttp, OTel SDK, contrib autoexport). \"off\": no OTLP endpoint, each proxy's default. "+
		"Backends: %s.\n",
		in.cfg.rounds, order, in.cfg.warmup, in.cfg.duration, in.cfg.wrkThreads, pin, backendDesc(in.cfg.backend))
	w("- **Columns**: CPU = utime+stime of the proxy from /proc around the measured run, per request, µs; median (min–max) over rounds. " +
		"Added = the row's CPU/req minus its own proxy's \"off\" row in the same round, then the median over rounds; " +
		"relative = the same-round ratio to \"off\".\n")
	for _, c := range r.conns {
		w("\n## %d connections\n\n", c)
		w("| proxy | tracing | CPU µs/req | added µs/req | relative to off | req/s | p99 µs | errors |\n")
		w("|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, name := range r.names {
			tt, _ := findTracingTarget(name)
			mode := strings.TrimPrefix(name, tt.proxy+"-")
			cpu := r.over(name, c, mCPU)
			if cpu.n == 0 {
				w("| %s | %s | failed | | | | | |\n", tt.proxy, mode)
				continue
			}
			added, rel := "–", "–"
			if name != tt.baseOf() {
				added = fmtSpread(r.addedCPU(c, name, tt.baseOf()), 1)
				rel = fmtSpreadUnit(r.ratio(c, r.metricOf(name, c, mCPU), r.metricOf(tt.baseOf(), c, mCPU)), 3, "×")
			}
			var errSum int64
			for round := 0; round < r.rounds; round++ {
				if s, ok := r.get(name, c, round); ok {
					errSum += s.errors
				}
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %d |\n", tt.proxy, mode, fmtSpread(cpu, 1), added, rel,
				fmtSpread(r.over(name, c, mRPS), 0), fmtSpread(r.over(name, c, mP99), 0), errSum)
		}
		if in.cfg.paired {
			writePaired(&b, r, c)
			continue
		}
		w("\n### Issue 15 targets at %d connections (medians of same-round ratios)\n\n", c)
		for _, g := range tracingGoals(r, c) {
			if g.s.n == 0 {
				w("- %s: not measured\n", g.label)
				continue
			}
			verdict := "met"
			if g.s.med > g.limit {
				verdict = "**not met**"
			}
			w("- %s: %s (%s) — %s\n", g.label, fmtNum(g.s.med, 3)+g.unit, fmtSpreadUnit(g.s, 3, g.unit), verdict)
		}
	}
	if len(in.notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range in.notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// pairedGoals are the targets a -paired run checks: CPU per request
// relative to off in the same round.
var pairedGoals = []struct {
	name  string
	limit float64
}{
	{"switchyard-0%", 1.01},
	{"switchyard-1%", 1.03},
	{"switchyard-failures+1%", 1.03},
}

// writePaired writes the same-round ratios to switchyard-off at conns as
// quantiles and a confidence interval of their median, and a verdict that
// says "undecided" while that interval straddles the limit.
func writePaired(b *strings.Builder, r *results, conns int) {
	fmt.Fprintf(b, "\n### CPU/req relative to off at %d connections (same-round pairs)\n\n", conns)
	b.WriteString("| row | pairs | median | 25–75% | 95% CI of the median | target | verdict |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, g := range pairedGoals {
		v := r.ratios(conns, r.metricOf(g.name, conns, mCPU), r.metricOf("switchyard-off", conns, mCPU))
		if len(v) == 0 {
			fmt.Fprintf(b, "| %s | 0 | | | | ≤ %s× | not measured |\n", g.name, fmtNum(g.limit, 2))
			continue
		}
		lo, hi, ok := medianCI(v)
		ci, verdict := "too few pairs", "undecided (too few pairs)"
		if ok {
			ci = fmtNum(lo, 3) + "–" + fmtNum(hi, 3) + "×"
			switch {
			case hi <= g.limit:
				verdict = "met"
			case lo > g.limit:
				verdict = "**not met**"
			default:
				verdict = "undecided (the interval holds the limit: more rounds or a quieter machine)"
			}
		}
		fmt.Fprintf(b, "| %s | %d | %s× | %s–%s× | %s | ≤ %s× | %s |\n", g.name, len(v), fmtNum(quantile(v, 0.5), 3),
			fmtNum(quantile(v, 0.25), 3), fmtNum(quantile(v, 0.75), 3), ci, fmtNum(g.limit, 2), verdict)
	}
}
