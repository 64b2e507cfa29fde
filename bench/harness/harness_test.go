package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://127.0.0.1:1234/
  1 threads and 64 connections
BENCH requests=40000 duration_us=2000000 bytes=1 p50_us=812 p99_us=2400 max_us=9000 err_connect=0 err_read=1 err_write=0 err_status=2 err_timeout=0
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 40000 || r.p50 != 812*time.Microsecond || r.p99 != 2400*time.Microsecond || r.errors != 3 {
		t.Fatalf("got %+v", r)
	}
	if got := r.rps(); got != 20000 {
		t.Fatalf("rps %v, want 20000", got)
	}
}

func TestParseWrkRejectsOutputWithoutSummary(t *testing.T) {
	for name, out := range map[string]string{
		"no summary line": "unable to connect to 127.0.0.1:1 Connection refused\n",
		"zero requests":   "BENCH requests=0 duration_us=1000000 p50_us=0 p99_us=0\n",
		"a field missing": "BENCH requests=10 duration_us=1000000 p50_us=1\n",
		"a non-number":    "BENCH requests=ten duration_us=1000000 p50_us=1 p99_us=2\n",
	} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	line := "4242 (nginx: worker (x) y) S 4241 4241 4241 0 -1 4194560 100 0 0 0 150 25 3 4 20 0 1 0 987654 1000 200 18446744073709551615\n"
	s, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.pid != 4242 || s.ppid != 4241 || s.ticks != 175 || s.start != 987654 {
		t.Fatalf("got %+v", s)
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	s, err := readStat(os.Getpid())
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if s.pid != os.Getpid() || s.ppid != os.Getppid() || s.start == 0 {
		t.Fatalf("got %+v", s)
	}
	if tr := tree(os.Getpid()); len(tr) == 0 || tr[0].pid != os.Getpid() {
		t.Fatalf("tree %+v", tr)
	}
	if peakRSS(os.Getpid()) <= 0 {
		t.Fatal("no VmHWM for this process")
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t   12800 kB\nVmRSS:\t 12000 kB\n"
	if got := parseVmHWM(strings.NewReader(status)); got != 12800 {
		t.Fatalf("got %d, want 12800", got)
	}
}

func TestCPUSinceCountsNewProcessesFromZero(t *testing.T) {
	master := procStat{pid: 1, start: 10}
	worker := procStat{pid: 2, start: 11}
	late := procStat{pid: 3, start: 12}
	before := cpuSample{master: 5, worker: 100}
	after := cpuSample{master: 5, worker: 250, late: 50}
	if got := cpuSince(before, after); got != 2*time.Second {
		t.Fatalf("got %v, want 2s (200 ticks)", got)
	}
}

func TestSummarizeTakesTheMiddleOrTheMeanOfTheTwoMiddles(t *testing.T) {
	if s := summarize([]float64{3, 1, 2}); s.med != 2 || s.min != 1 || s.max != 3 || s.n != 3 {
		t.Fatalf("odd: %+v", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.med != 2.5 {
		t.Fatalf("even: %+v", s)
	}
	if s := summarize(nil); s.n != 0 {
		t.Fatalf("empty: %+v", s)
	}
}

func TestRatioPairsSamplesOfTheSameRound(t *testing.T) {
	targets := []target{{name: tHAProxy}, {name: tSwitchyard}}
	r := newResults(targets, []int{64}, 3)
	for round, v := range [][2]time.Duration{{30, 45}, {40, 40}, {20, 0}} {
		r.put(tHAProxy, 64, round, sample{ok: true, cpuPerReq: v[0] * time.Microsecond})
		if v[1] > 0 {
			r.put(tSwitchyard, 64, round, sample{ok: true, cpuPerReq: v[1] * time.Microsecond})
		}
	}
	s := r.ratio(64, r.metricOf(tSwitchyard, 64, mCPU), r.metricOf(tHAProxy, 64, mCPU))
	// Round 3 has no Switchyard sample and is left out: ratios 1.5 and 1.0.
	if s.n != 2 || s.med != 1.25 || s.min != 1 || s.max != 1.5 {
		t.Fatalf("got %+v", s)
	}
}

func TestFmtNumGroupsThousands(t *testing.T) {
	for _, c := range []struct {
		v    float64
		dec  int
		want string
	}{
		{1234567, 0, "1,234,567"},
		{999, 0, "999"},
		{1234.5, 1, "1,234.5"},
		{-1234, 0, "-1,234"},
		{0.25, 2, "0.25"},
	} {
		if got := fmtNum(c.v, c.dec); got != c.want {
			t.Errorf("fmtNum(%v, %d) = %q, want %q", c.v, c.dec, got, c.want)
		}
	}
}

func TestParseFlagsRejectsFractionalSeconds(t *testing.T) {
	if _, err := parseFlags([]string{"-duration", "1500ms"}); err == nil {
		t.Fatal("no error for -duration 1500ms")
	}
	c, err := parseFlags([]string{"-rounds", "1", "-duration", "3s", "-conns", "64", "-targets", "direct,switchyard"})
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 1 || c.duration != 3*time.Second || len(c.conns) != 1 || c.conns[0] != 64 || len(c.targets) != 2 {
		t.Fatalf("got %+v", c)
	}
	if _, err := parseFlags([]string{"-targets", "envoy"}); err == nil {
		t.Fatal("no error for an unknown target")
	}
}

// A new report keeps what was written by hand below the marker, and only
// that.
func TestWriteReportKeepsTheHandWrittenPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.md")
	hand := keptMarker + "\n\n## Notes by hand\n\nfigure 42\n"
	if err := os.WriteFile(path, []byte("# Old table\n\nold figure 1\n\n"+hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(path, "# New table\n\nnew figure 2\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# New table\n\nnew figure 2\n\n" + hand; string(got) != want {
		t.Fatalf("report:\n%s\nwant:\n%s", got, want)
	}
}
