package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

type reportInput struct {
	host              hostDesc
	cfg               config
	pinned            bool
	targets           []target
	wrk               string
	results           *results
	notes             []string
	started, finished time.Time
}

// renderReport returns the markdown report: header, method, the table,
// ratios, the issue 18 table and the targets of issues 18 and 6.
func renderReport(in reportInput) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	writeHeader(w, in)
	writeTable(w, in.results)
	ratios := newRatios(in.results)
	writeRatios(w, in.results, ratios)
	writeIssue18Table(w, issue18Rows(in.results, ratios))
	writeGoals(w, "Issue 18 targets (medians of the same-round ratios)", in.results.conns, issue18Goals(in.results, ratios))
	writeTargets(w, in.results, ratios)
	if len(in.notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range in.notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// writer appends formatted text to the report.
type writer func(format string, a ...any)

// writeHeader writes the title, date, machine, versions, method and the
// meaning of the columns.
func writeHeader(w writer, in reportInput) {
	w("# Switchyard benchmark (%s backends)\n\n", map[string]string{backendMinimal: "minimal", backendNetHTTP: "net/http"}[in.cfg.backend])
	w("- **Date**: %s (%s of runs)\n", in.started.UTC().Format("2006-01-02 15:04 MST"), in.finished.Sub(in.started).Round(time.Second))
	w("- **Machine**: %d CPUs (%s), %s memory, Linux %s; load average at start %s\n", in.host.cpus, in.host.model, in.host.memory, in.host.kernel, in.host.loadavg)
	var vers []string
	for _, t := range in.targets {
		if t.name == tDirect || t.name == tSwitchOtel {
			continue
		}
		vers = append(vers, fmt.Sprintf("%s %s", t.name, t.version))
	}
	vers = append(vers, "wrk "+in.wrk)
	w("- **Versions**: %s\n", strings.Join(vers, "; "))
	pin := "not pinned"
	if in.pinned {
		pin = fmt.Sprintf("the proxy under test on CPU %d, wrk, the backends and the OTLP sink on CPU %d (`taskset -c`)", in.cfg.proxyCPU, in.cfg.loadCPU)
	}
	w("- **Method**: %d interleaved round(s) (every target once per round and connection count, in the order %s); "+
		"each run starts the proxy afresh, checks that it balances over all 3 backends, loads it for %s unmeasured, "+
		"then measures %s with `wrk -t%d -c N --latency` (p50/p99 exact from wrk's histogram); %s. "+
		"Backends: %s. One worker per proxy: nginx `worker_processes 1`, "+
		"HAProxy `nbthread 1`, GOMAXPROCS=1 for Caddy, httputil and Switchyard, all three built as shipped "+
		"(static, `CGO_ENABLED=0 -trimpath -ldflags=\"-s -w\"`); round-robin with upstream keep-alive everywhere; "+
		"X-Forwarded-For/-Host/-Proto added by every proxy. Switchyard: static config, probes on (defaults), tracing off; "+
		"switchyard+otel1%%: the same with OTLP http/protobuf traces to a local sink, `traceidratio` 0.01.\n",
		in.cfg.rounds, strings.Join(in.results.names, ", "), in.cfg.warmup, in.cfg.duration, in.cfg.wrkThreads, pin, backendDesc(in.cfg.backend))
	w("- **Columns**: median over rounds, (min–max) when more than one round. CPU = utime+stime of the proxy's processes " +
		"(nginx master and worker) from /proc/<pid>/stat around the measured run, per request completed, in µs " +
		"(µs/req = CPU ms per 1,000 requests; 10 ms tick resolution). Peak RSS = VmHWM of the serving process " +
		"(nginx: the worker) at the end of that run. Only ratios within one run mean anything on a shared machine.\n")
	w("\n")
}

// writeTable writes one row per connection count and target.
func writeTable(w writer, r *results) {
	w("| target | conns | req/s | p50 µs | p99 µs | CPU µs/req | peak RSS MiB | errors |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.conns {
		for _, name := range r.names {
			rps := r.over(name, c, mRPS)
			if rps.n == 0 {
				w("| %s | %d | failed | | | | | |\n", name, c)
				continue
			}
			cpu, rss := "–", "–"
			if name != tDirect {
				cpu = fmtSpread(r.over(name, c, mCPU), 1)
				rss = fmtSpread(r.over(name, c, mRSS), 1)
			}
			var errSum int64 // over all rounds
			for round := 0; round < r.rounds; round++ {
				if s, ok := r.get(name, c, round); ok {
					errSum += s.errors
				}
			}
			w("| %s | %d | %s | %s | %s | %s | %s | %d |\n", name, c,
				fmtSpread(rps, 0), fmtSpread(r.over(name, c, mP50), 0), fmtSpread(r.over(name, c, mP99), 0),
				cpu, rss, errSum)
		}
	}
}

// ratios are the same-round ratios the report shows and checks targets
// against, each as a function of the connection count.
type ratios struct {
	cpuVs        func(other string) func(c int) spread // Switchyard's CPU/req ÷ other's
	otelCost     func(c int) spread                    // switchyard+otel1% CPU/req ÷ Switchyard's
	p99VsHAProxy func(c int) spread
	rssVsHAProxy func(c int) spread // peak RSS
	addedVsNginx func(c int) spread // latency added over direct at p50
}

func newRatios(r *results) ratios {
	return ratios{
		cpuVs: func(other string) func(int) spread {
			return func(c int) spread {
				return r.ratio(c, r.metricOf(tSwitchyard, c, mCPU), r.metricOf(other, c, mCPU))
			}
		},
		otelCost: func(c int) spread {
			return r.ratio(c, r.metricOf(tSwitchOtel, c, mCPU), r.metricOf(tSwitchyard, c, mCPU))
		},
		p99VsHAProxy: func(c int) spread {
			return r.ratio(c, r.metricOf(tSwitchyard, c, mP99), r.metricOf(tHAProxy, c, mP99))
		},
		rssVsHAProxy: func(c int) spread {
			return r.ratio(c, r.metricOf(tSwitchyard, c, mRSS), r.metricOf(tHAProxy, c, mRSS))
		},
		addedVsNginx: func(c int) spread {
			return r.ratio(c, r.addedP50(tSwitchyard, c), r.addedP50(tNginx, c))
		},
	}
}

// writeRatios writes the ratio table: one row per ratio, one column per
// connection count.
func writeRatios(w writer, r *results, q ratios) {
	rows := []struct {
		label, goal18, goal6 string
		f                    func(c int) spread
	}{
		{"Switchyard CPU/req ÷ HAProxy", "≤ 1.2 at 1, ≤ 1.0 at 64 and 256", "≤ 1.5 at 64 (stretch 1.0)", q.cpuVs(tHAProxy)},
		{"Switchyard CPU/req ÷ nginx", "", "", q.cpuVs(tNginx)},
		{"Switchyard CPU/req ÷ Caddy", "", "≤ 0.5 at 64", q.cpuVs(tCaddy)},
		{"Switchyard CPU/req ÷ httputil", "", "", q.cpuVs(tHTTPUtil)},
		{"switchyard+otel1% CPU/req ÷ Switchyard", "", "", q.otelCost},
		{"Switchyard p99 ÷ HAProxy p99", "≤ 1.3 at 64 and 256", "≤ 1.3 at 64", q.p99VsHAProxy},
		{"added p50 (− direct): Switchyard ÷ nginx", "≤ 1.0 at 1", "≤ 1.5 at 1", q.addedVsNginx},
		{"Switchyard peak RSS ÷ HAProxy", "", "", q.rssVsHAProxy},
	}
	w("\n## Ratios\n\nComputed within each round, then median (min–max) over rounds.\n\n")
	w("| ratio |")
	for _, c := range r.conns {
		if c == 1 {
			w(" 1 conn |")
		} else {
			w(" %d conns |", c)
		}
	}
	w(" issue 18 target | issue 6 target |\n|---|")
	for range r.conns {
		w("---:|")
	}
	w("---|---|\n")
	for _, row := range rows {
		w("| %s |", row.label)
		for _, c := range r.conns {
			s := row.f(c)
			if s.n == 0 {
				w(" – |")
			} else {
				w(" %s |", fmtSpreadUnit(s, 2, "×"))
			}
		}
		w(" %s | %s |\n", row.goal18, row.goal6)
	}
}

// goal is one target checked against the median of a same-round ratio (or
// of a measurement) at one connection count.
type goal struct {
	label string
	conns int
	s     spread
	limit float64
	below bool // strictly below the limit, not at most
	unit  string
}

// issue6Goals are the targets of issue 6.
func issue6Goals(r *results, q ratios) []goal {
	return []goal{
		{"CPU/req at 64 conns ≤ 1.5× HAProxy's", 64, q.cpuVs(tHAProxy)(64), 1.5, false, "×"},
		{"CPU/req at 64 conns ≤ 1.0× HAProxy's (stretch)", 64, q.cpuVs(tHAProxy)(64), 1.0, false, "×"},
		{"CPU/req at 64 conns ≤ 0.5× Caddy's", 64, q.cpuVs(tCaddy)(64), 0.5, false, "×"},
		{"p99 at 64 conns ≤ 1.3× HAProxy's", 64, q.p99VsHAProxy(64), 1.3, false, "×"},
		{"added latency at 1 conn ≤ 1.5× nginx's", 1, q.addedVsNginx(1), 1.5, false, "×"},
		{"peak RSS at 256 conns < 30 MiB", 256, r.over(tSwitchyard, 256, mRSS), 30, true, " MiB"},
	}
}

// writeTargets checks the issue 6 targets against the medians of the
// same-round ratios, for the connection counts that were run.
func writeTargets(w writer, r *results, q ratios) {
	writeGoals(w, "Issue 6 targets (medians of the same-round ratios)", r.conns, issue6Goals(r, q))
}

// writeGoals writes a section that checks goals, leaving out those at a
// connection count that was not run.
func writeGoals(w writer, heading string, conns []int, goals []goal) {
	w("\n## %s\n\n", heading)
	listed := false
	for _, g := range goals {
		if !slices.Contains(conns, g.conns) {
			continue
		}
		listed = true
		w("- %s\n", g.verdict())
	}
	if !listed {
		w("- none of the connection counts the targets name (1, 64, 256) was run\n")
	}
}

// verdict is the goal's line: the label, the median and whether it is met.
func (g goal) verdict() string {
	if g.s.n == 0 {
		return g.label + ": not measured"
	}
	met := g.s.med <= g.limit
	if g.below {
		met = g.s.med < g.limit
	}
	v := "met"
	if !met {
		v = "**not met**"
	}
	return fmt.Sprintf("%s: %s%s — %s", g.label, fmtNum(g.s.med, 2), g.unit, v)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func mib(kib int64) float64      { return float64(kib) / 1024 }

// fmtSpread formats "median (min–max)", or the median alone for one value.
func fmtSpread(s spread, decimals int) string {
	if s.n == 0 {
		return "–"
	}
	if s.n == 1 || s.min == s.max {
		return fmtNum(s.med, decimals)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.med, decimals), fmtNum(s.min, decimals), fmtNum(s.max, decimals))
}

// fmtSpreadUnit is fmtSpread with unit after the median: "1.52× (1.40–1.61)".
func fmtSpreadUnit(s spread, decimals int, unit string) string {
	if s.n == 0 {
		return "–"
	}
	out := fmtNum(s.med, decimals) + unit
	if s.n > 1 && s.min != s.max {
		out += fmt.Sprintf(" (%s–%s)", fmtNum(s.min, decimals), fmtNum(s.max, decimals))
	}
	return out
}

// fmtNum formats v with decimals places and thousands separators.
func fmtNum(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var g strings.Builder
	for i, ch := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			g.WriteByte(',')
		}
		g.WriteRune(ch)
	}
	out := g.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

func group(v float64) string { return fmtNum(v, 0) }

// fmtDur formats a latency for progress lines.
func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
