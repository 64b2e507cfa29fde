package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run18 is one measured run in the tests below: CPU µs/req, p50 and p99 µs,
// peak RSS MiB.
type run18 struct{ cpu, p50, p99, rss float64 }

// results18 builds three rounds at 1, 64 and 256 connections from
// runs[target][conns][round]; a zero run is a failed one.
func results18(runs map[string]map[int][3]run18) *results {
	var targets []target
	for _, name := range []string{tDirect, tNginx, tHAProxy, tCaddy, tSwitchyard} {
		targets = append(targets, target{name: name})
	}
	r := newResults(targets, []int{1, 64, 256}, 3)
	for name, byConns := range runs {
		for c, rounds := range byConns {
			for round, x := range rounds {
				if x == (run18{}) {
					continue
				}
				r.put(name, c, round, sample{
					ok: true, rps: 1000, requests: 10000,
					p50: time.Duration(x.p50 * float64(time.Microsecond)), p99: time.Duration(x.p99 * float64(time.Microsecond)),
					proxy: name != tDirect, cpuPerReq: time.Duration(x.cpu * float64(time.Microsecond)),
					rssKiB: int64(x.rss * 1024),
				})
			}
		}
	}
	return r
}

// fixture18 has same-round ratios whose median differs from the ratio of
// the medians, and values at the targets' limits.
func fixture18() *results {
	same := func(x run18) [3]run18 { return [3]run18{x, x, x} }
	return results18(map[string]map[int][3]run18{
		tDirect: {1: same(run18{p50: 20, p99: 50}), 64: same(run18{p50: 900, p99: 3000}), 256: same(run18{p50: 5000, p99: 9000})},
		tNginx: {
			1:   same(run18{cpu: 50, p50: 120, p99: 300, rss: 7}),
			64:  same(run18{cpu: 16, p50: 1000, p99: 2000, rss: 7}),
			256: same(run18{cpu: 16, p50: 5000, p99: 8000, rss: 8}),
		},
		tHAProxy: {
			1:   same(run18{cpu: 50, p50: 130, p99: 307, rss: 15}),
			64:  {{cpu: 10, p50: 1000, p99: 2000, rss: 16}, {cpu: 30, p50: 1000, p99: 2000, rss: 16}, {cpu: 30, p50: 1000, p99: 2000, rss: 16}},
			256: same(run18{cpu: 20, p50: 5000, p99: 8000, rss: 20}),
		},
		tCaddy: {
			1:   same(run18{cpu: 200, p50: 150, p99: 500, rss: 50}),
			64:  {{}, {cpu: 64, p50: 3000, p99: 9000, rss: 60}, {}}, // two rounds failed
			256: same(run18{cpu: 100, p50: 20000, p99: 36000, rss: 80}),
		},
		tSwitchyard: {
			1:   same(run18{cpu: 60, p50: 110, p99: 322, rss: 22}),
			64:  {{cpu: 20, p50: 1000, p99: 3000, rss: 23}, {cpu: 30, p50: 1000, p99: 2000, rss: 23}, {cpu: 45, p50: 1000, p99: 4000, rss: 23}},
			256: {{cpu: 22, p50: 6000, p99: 11000, rss: 29}, {cpu: 22, p50: 6000, p99: 11000, rss: 31}, {cpu: 22, p50: 6000, p99: 11000, rss: 30}},
		},
	})
}

func TestIssue18RowsAreMediansOfSameRoundRatios(t *testing.T) {
	r := fixture18()
	rows := issue18Rows(r, newRatios(r))
	if len(rows) != 3 || rows[1].conns != 64 {
		t.Fatalf("rows %+v", rows)
	}
	row := rows[1]
	// CPU ratios per round 2.0, 1.0, 1.5: median 1.5, where the medians'
	// ratio would say 30/30 = 1.0.
	if s := row.cpuVsHAProxy; s.n != 3 || s.med != 1.5 || s.min != 1 || s.max != 2 {
		t.Fatalf("CPU ratio %+v", s)
	}
	// HAProxy 10, 30, 30 µs: 100,000, 33,333, 33,333 per CPU-second.
	if s := row.perCPUSecond[1]; s.n != 3 || int(s.med) != 33333 || s.max != 100000 {
		t.Fatalf("HAProxy per CPU-second %+v", s)
	}
	// Caddy ran in one round of three (the others failed).
	if s := row.perCPUSecond[2]; s.n != 1 || s.med != 1e6/64 {
		t.Fatalf("Caddy per CPU-second %+v", s)
	}
	if row.p99[0].med != 3000 || row.p99[1].med != 2000 || row.p99Ratio.med != 1.5 {
		t.Fatalf("p99 %+v ratio %+v", row.p99, row.p99Ratio)
	}
	if s := rows[2].rssRatio; s.n != 3 || s.med != 1.5 || s.min != 29.0/20 {
		t.Fatalf("RSS ratio at 256 %+v", s)
	}
}

func TestPerCPUSecondLeavesOutRunsWithoutACPUTick(t *testing.T) {
	r := results18(map[string]map[int][3]run18{
		tHAProxy: {64: {{cpu: 20, p50: 1}, {cpu: 0, p50: 1}, {cpu: 40, p50: 1}}},
	})
	if s := r.perCPUSecond(tHAProxy, 64); s.n != 2 || s.med != 37500 {
		t.Fatalf("got %+v, want the median of 50,000 and 25,000 over 2 runs", s)
	}
	if s := r.perCPUSecond(tDirect, 64); s.n != 0 {
		t.Fatalf("direct, which has no proxy CPU: %+v", s)
	}
}

func TestReportHasTheIssue18TableAndTargets(t *testing.T) {
	r := fixture18()
	report := renderReport(reportInput{
		cfg:     config{rounds: 3, backend: backendMinimal},
		results: r,
		targets: []target{{name: tDirect}, {name: tNginx}, {name: tHAProxy}, {name: tCaddy}, {name: tSwitchyard}},
	})
	for _, want := range []string{
		"# Switchyard benchmark (minimal backends)",
		"Backends: 3 minimal HTTP/1.1 responders",
		"| conns | nginx | HAProxy | Caddy | Switchyard | Switchyard CPU/req ÷ HAProxy | p99 Switchyard / HAProxy | peak RSS Switchyard / HAProxy |",
		"| 1 | 20,000 | 20,000 | 5,000 | 16,667 | 1.20× | 322 / 307 µs (1.05×) | 22.0 / 15.0 MiB (1.47×) |",
		"| 64 | 62,500 | 33,333 | 15,625 | 33,333 | 1.50× (1.00–2.00) | 3.00 / 2.00 ms (1.50×) | 23.0 / 16.0 MiB (1.44×) |",
		"| Switchyard peak RSS ÷ HAProxy | 1.47× | 1.44× | 1.50× (1.45–1.55) |  |  |",
		"- CPU/req at 1 conn ≤ 1.2× HAProxy's: 1.20× — met",
		"- CPU/req at 64 conns ≤ 1.0× HAProxy's: 1.50× — **not met**",
		"- CPU/req at 256 conns ≤ 1.0× HAProxy's: 1.10× — **not met**",
		"- p99 at 64 conns ≤ 1.3× HAProxy's: 1.50× — **not met**",
		"- p99 at 256 conns ≤ 1.3× HAProxy's: 1.38× — **not met**",
		// Added over direct: Switchyard 90 µs, nginx 100 µs.
		"- added p50 latency (− direct) at 1 conn ≤ nginx's: 0.90× — met",
		// 30 MiB is at most 30 (issue 18) but not below 30 (issue 6).
		"- peak RSS at 256 conns ≤ 30 MiB: 30.00 MiB — met",
		"- peak RSS at 256 conns < 30 MiB: 30.00 MiB — **not met**",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if i18, i6 := strings.Index(report, "## Issue 18 targets"), strings.Index(report, "## Issue 6 targets"); i18 < 0 || i6 < i18 {
		t.Errorf("want the issue 18 targets, then issue 6's: at %d and %d", i18, i6)
	}
}

func TestGoalsOfConnectionCountsNotRunAreLeftOut(t *testing.T) {
	r := fixture18()
	r.conns = []int{64}
	var b strings.Builder
	writeGoals(func(f string, a ...any) { b.WriteString(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n") },
		"Issue 18 targets", r.conns, issue18Goals(r, newRatios(r)))
	got := b.String()
	if strings.Contains(got, "1 conn") || strings.Contains(got, "256 conns") || !strings.Contains(got, "p99 at 64 conns") {
		t.Fatalf("got\n%s", got)
	}
}

func TestFmtLatencyPairKeepsOneUnit(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		want string
	}{
		{322, 307, "322 / 307 µs"},
		{3780, 2130, "3.78 / 2.13 ms"},
		{1200, 900, "1.20 / 0.90 ms"},
	} {
		if got := fmtLatencyPair(c.a, c.b); got != c.want {
			t.Errorf("fmtLatencyPair(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestBackendFlagChoosesTheModeAndItsReportFiles(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.backend != backendMinimal || c.out != filepath.Join("bench", "results", "latest.md") || c.raw != filepath.Join("bench", "results", "latest.raw") {
		t.Fatalf("defaults: %q %q %q", c.backend, c.out, c.raw)
	}
	c, err = parseFlags([]string{"-backend", "nethttp"})
	if err != nil {
		t.Fatal(err)
	}
	if c.backend != backendNetHTTP || c.out != filepath.Join("bench", "results", "latest-nethttp.md") || c.raw != filepath.Join("bench", "results", "latest-nethttp.raw") {
		t.Fatalf("nethttp: %q %q %q", c.backend, c.out, c.raw)
	}
	c, err = parseFlags([]string{"-backend", "nethttp", "-out", "x.md", "-raw", ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.out != "x.md" || c.raw != "" {
		t.Fatalf("named files are kept: %q %q", c.out, c.raw)
	}
	c, err = parseFlags([]string{"-tracing", "-backend", "nethttp"})
	if err != nil {
		t.Fatal(err)
	}
	if c.out != filepath.Join("bench", "results", "tracing-nethttp.md") {
		t.Fatalf("tracing on nethttp: %q", c.out)
	}
	if _, err := parseFlags([]string{"-backend", "fasthttp"}); err == nil || !strings.Contains(err.Error(), `"fasthttp"`) {
		t.Fatalf("unknown mode: %v", err)
	}
}
