package main

import (
	"os"
	"reflect"
	"testing"
	"time"
)

func TestParseTicks(t *testing.T) {
	// A real line's shape, with a command name holding spaces and ')'.
	line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 3 0 98765 1000 200 18446744073709551615\n"
	got, err := parseTicks([]byte(line))
	if err != nil || got != 1234+567 {
		t.Fatalf("parseTicks = %d, %v; want 1801", got, err)
	}
	for name, bad := range map[string]string{
		"no name":   "4242 S 1 2 3",
		"short":     "4242 (x) S 1 2 3",
		"not count": "4242 (x) S 1 4242 4242 0 -1 4194560 500 0 0 0 12x4 567 0",
	} {
		if _, err := parseTicks([]byte(bad)); err == nil {
			t.Errorf("%s: parseTicks(%q) succeeded", name, bad)
		}
	}
}

func TestCPUTimeOfThisProcess(t *testing.T) {
	d, err := cpuTime(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if d < 0 || d > time.Hour {
		t.Fatalf("cpuTime(self) = %s", d)
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %d", got)
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("percentile([7], 0.99) = %d", got)
	}
}

func TestSpreadOf(t *testing.T) {
	if got := spreadOf([]float64{3, 1, 2}); got != (spread{med: 2, min: 1, max: 3}) {
		t.Errorf("odd count: %+v", got)
	}
	if got := spreadOf([]float64{4, 1, 3, 2}); got != (spread{med: 2.5, min: 1, max: 4}) {
		t.Errorf("even count: %+v", got)
	}
	if got := spreadOf(nil); got != (spread{}) {
		t.Errorf("empty: %+v", got)
	}
}

func TestRatiosPairSameRound(t *testing.T) {
	// Round 2 failed for the second target: its ratio is left out rather
	// than pairing round 3 of one with round 2 of the other.
	got := ratios([]float64{10, 20, 30}, []float64{5, 0, 10})
	if want := []float64{2, 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ratios = %v, want %v", got, want)
	}
	if got := cell(got, "%.2f"); got != "2.50 (2.00-3.00)" {
		t.Errorf("cell = %q", got)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-targets", "direct,envoy"},
		{"-callers", "2", "-conns", "4"},
		{"-rounds", "0"},
		{"-duration", "0s"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
