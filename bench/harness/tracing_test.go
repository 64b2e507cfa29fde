package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tracingResults builds results for the tracing rows from CPU µs/request
// per round.
func tracingResults(t *testing.T, cpu map[string][]float64) *results {
	t.Helper()
	var targets []target
	rounds := 0
	for _, name := range tracingTargetNames() {
		if v, ok := cpu[name]; ok {
			targets = append(targets, target{name: name})
			rounds = max(rounds, len(v))
		}
	}
	r := newResults(targets, []int{64}, rounds)
	for name, v := range cpu {
		for round, us := range v {
			if us < 0 { // a failed run
				continue
			}
			r.put(name, 64, round, sample{ok: true, proxy: true, requests: 1000,
				cpuPerReq: time.Duration(us * float64(time.Microsecond))})
		}
	}
	return r
}

func TestAddedCPUPairsRounds(t *testing.T) {
	r := tracingResults(t, map[string][]float64{
		"switchyard-off":  {30, 40, 35},
		"switchyard-100%": {45, 60, -1},
	})
	s := r.addedCPU(64, "switchyard-100%", "switchyard-off")
	// Round 3 failed for 100%, so only rounds 1 and 2 pair: +15 and +20.
	if s.n != 2 || s.min != 15 || s.max != 20 || s.med != 17.5 {
		t.Fatalf("added %+v, want n=2 15–20 median 17.5", s)
	}
}

func TestAddedRatioAgainstCaddy(t *testing.T) {
	r := tracingResults(t, map[string][]float64{
		"switchyard-off":  {30, 30, 30},
		"switchyard-100%": {40, 45, 60},
		"caddy-off":       {90, 90, 90},
		"caddy-100%":      {120, 120, 90}, // round 3 adds nothing: left out
	})
	s := r.addedRatio(64, "switchyard-100%", "switchyard-off", "caddy-100%", "caddy-off")
	if s.n != 2 || s.min != 10.0/30 || s.max != 0.5 {
		t.Fatalf("ratio %+v, want rounds 1 and 2: 1/3 and 1/2", s)
	}
}

func TestTracingGoalsVerdicts(t *testing.T) {
	r := tracingResults(t, map[string][]float64{
		"switchyard-off":         {100},
		"switchyard-0%":          {101},
		"switchyard-1%":          {104},
		"switchyard-failures+1%": {102},
		"switchyard-100%":        {115},
		"caddy-off":              {200},
		"caddy-100%":             {230},
	})
	report := renderTracingReport(reportInput{cfg: config{rounds: 1}, results: r})
	for _, want := range []string{
		"0% ≤ +1% CPU/req over off: 1.010× (1.010×) — met",
		"1% ≤ +3% CPU/req over off: 1.040× (1.040×) — **not met**",
		"no failures, ≤ +3% CPU/req over off: 1.020× (1.020×) — met",
		"0.5× what 100% adds to Caddy: 0.500× (0.500×) — met",
		"| switchyard | 100% | 115.0 | 15.0 | 1.150× |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestTracingFlagDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-tracing"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.targets, tracingTargetNames()) || !slices.Equal(c.conns, []int{64}) ||
		!strings.HasSuffix(c.out, "tracing.md") || !strings.HasSuffix(c.raw, "tracing.raw") {
		t.Fatalf("got targets %v conns %v out %q raw %q", c.targets, c.conns, c.out, c.raw)
	}
	c, err = parseFlags([]string{"-tracing", "-targets", "caddy-off,caddy-100%", "-conns", "1", "-out", ""})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.targets, []string{"caddy-off", "caddy-100%"}) || !slices.Equal(c.conns, []int{1}) || c.out != "" {
		t.Fatalf("explicit flags overridden: %+v", c)
	}
	if _, err := parseFlags([]string{"-tracing", "-targets", "nginx"}); err == nil {
		t.Error("-tracing accepted a target that is not a tracing row")
	}
	if _, err := parseFlags([]string{"-targets", "caddy-1%"}); err == nil {
		t.Error("a tracing row accepted without -tracing")
	}
}

func TestTracingEnvUsesOneProtocol(t *testing.T) {
	for _, tt := range tracingTargets {
		env := tt.otelEnv("127.0.0.1:4318")
		if tt.ratio == "" {
			if env != nil {
				t.Errorf("%s: off row sets %v", tt.name, env)
			}
			continue
		}
		if !slices.Contains(env, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf") || !slices.Contains(env, "OTEL_TRACES_SAMPLER_ARG="+tt.ratio) {
			t.Errorf("%s: env %v", tt.name, env)
		}
	}
}

func TestPairedFlagDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-tracing", "-paired"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.targets, pairedTargets) || c.rounds != 24 || c.duration != 3*time.Second || c.warmup != time.Second ||
		!strings.HasSuffix(c.out, "tracing-paired.md") || !strings.HasSuffix(c.raw, "tracing-paired.raw") {
		t.Fatalf("got %+v", c)
	}
	c, err = parseFlags([]string{"-tracing", "-paired", "-rounds", "40", "-duration", "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 40 || c.duration != 5*time.Second {
		t.Fatalf("explicit flags overridden: %+v", c)
	}
	if _, err := parseFlags([]string{"-paired"}); err == nil {
		t.Error("-paired accepted without -tracing")
	}
}

func TestRoundOrderPutsEveryRowBeforeEveryOtherAsOften(t *testing.T) {
	targets := []target{{name: "a"}, {name: "b"}, {name: "c"}}
	before := map[string]int{}
	seen := map[string]bool{}
	for r := range 6 {
		var names []string
		for _, t := range roundOrder(targets, r) {
			names = append(names, t.name)
		}
		seen[strings.Join(names, "")] = true
		for i := range names {
			for j := i + 1; j < len(names); j++ {
				before[names[i]+names[j]]++
			}
		}
	}
	if len(seen) != 6 {
		t.Errorf("six rounds ran %d distinct orders, want 6", len(seen))
	}
	for _, p := range []string{"ab", "ba", "ac", "ca", "bc", "cb"} {
		if before[p] != 3 {
			t.Errorf("%c before %c in %d of 6 rounds, want 3", p[0], p[1], before[p])
		}
	}
}

func TestMedianCIIsTheBinomialOrderStatistics(t *testing.T) {
	v := make([]float64, 24)
	for i := range v {
		v[i] = float64(24 - i) // unsorted
	}
	// n=24: P(X ≤ 6) = 1.1%, P(X ≤ 7) = 3.2%: the 7th and 18th values.
	if lo, hi, ok := medianCI(v); !ok || lo != 7 || hi != 18 {
		t.Errorf("n=24: %v–%v %v, want 7–18", lo, hi, ok)
	}
	if lo, hi, ok := medianCI(v[:6]); !ok || lo != 19 || hi != 24 {
		t.Errorf("n=6: %v–%v %v, want the range 19–24", lo, hi, ok)
	}
	if _, _, ok := medianCI(v[:5]); ok {
		t.Error("n=5 has no 95% interval")
	}
	if q := quantile([]float64{4, 1, 3, 2}, 0.5); q != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", q)
	}
}

func TestPairedReportVerdicts(t *testing.T) {
	off := make([]float64, 12)
	one := make([]float64, 12)
	fail := make([]float64, 12)
	zero := make([]float64, 12)
	for i := range off {
		off[i] = 100
		zero[i] = 102                   // 1.02: above the 0% row's 1.01
		one[i] = 101 + float64(i%3)*0.5 // 1.01–1.02: met
		fail[i] = 100 + float64(i)      // 1.00–1.11: holds 1.03
	}
	r := tracingResults(t, map[string][]float64{"switchyard-off": off, "switchyard-0%": zero, "switchyard-1%": one, "switchyard-failures+1%": fail})
	report := renderTracingReport(reportInput{cfg: config{rounds: 12, paired: true}, results: r})
	for _, want := range []string{
		"| switchyard-0% | 12 | 1.020× | 1.020–1.020× | 1.020–1.020× | ≤ 1.01× | **not met** |",
		"| switchyard-1% | 12 | 1.015× | 1.010–1.020× | 1.010–1.020× | ≤ 1.03× | met |",
		"| switchyard-failures+1% | 12 | 1.055× | 1.028–1.083× | 1.020–1.090× | ≤ 1.03× | undecided",
		"rotated each round",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "Issue 15 targets") {
		t.Error("a paired report has the targets of the full run")
	}
}

// -side-by-side belongs to -paired, and writes files of its own so that a
// side-by-side run does not overwrite the sequential paired report.
func TestSideBySideFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-tracing", "-side-by-side"}); err == nil {
		t.Error("-side-by-side without -paired accepted")
	}
	c, err := parseFlags([]string{"-tracing", "-paired", "-side-by-side"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.sideBySide || c.out != filepath.Join("bench", "results", "tracing-side-by-side.md") || c.raw != filepath.Join("bench", "results", "tracing-side-by-side.raw") {
		t.Errorf("side-by-side config: %+v", c)
	}
	if strings.Join(c.targets, ",") != strings.Join(pairedTargets, ",") {
		t.Errorf("side-by-side targets %v, want %v", c.targets, pairedTargets)
	}
}
