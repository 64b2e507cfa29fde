package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkScript makes wrk print its summary as one machine-readable line with
// exact percentiles in microseconds; --latency still prints the human
// distribution into the raw log.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`

// wrkResult is one wrk run.
type wrkResult struct {
	requests int64
	duration time.Duration // as measured by wrk
	p50, p99 time.Duration
	errors   int64 // socket errors, timeouts and non-2xx/3xx statuses
}

// wrkRun describes one invocation of wrk.
type wrkRun struct {
	wrk      string
	script   string
	cpu      int // -1: not pinned
	threads  int
	conns    int
	duration time.Duration // whole seconds: wrk takes no fractions
	url      string
}

// run executes wrk and returns its parsed summary; wrk's whole output is
// copied to raw. Cancelling ctx kills wrk.
func (w wrkRun) run(ctx context.Context, raw io.Writer) (wrkResult, error) {
	threads := min(w.threads, w.conns)
	args := []string{
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(w.conns),
		"-d", fmt.Sprintf("%ds", int(w.duration.Round(time.Second)/time.Second)),
		"--timeout", "5s",
		"--latency",
		"-s", w.script,
		w.url,
	}
	name := w.wrk
	if w.cpu >= 0 {
		args = append([]string{"-c", strconv.Itoa(w.cpu), w.wrk}, args...)
		name = "taskset"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if raw != nil {
		raw.Write(out.Bytes())
	}
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return parseWrk(out.String())
}

// parseWrk reads the BENCH line that wrkScript prints.
func parseWrk(out string) (wrkResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BENCH ")
		if !ok {
			continue
		}
		kv := map[string]int64{}
		for _, f := range strings.Fields(rest) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("wrk summary %s: %w", k, err)
			}
			kv[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "p50_us", "p99_us"} {
			if _, ok := kv[k]; !ok {
				return wrkResult{}, fmt.Errorf("wrk summary has no %s: %q", k, line)
			}
		}
		r := wrkResult{
			requests: kv["requests"],
			duration: time.Duration(kv["duration_us"]) * time.Microsecond,
			p50:      time.Duration(kv["p50_us"]) * time.Microsecond,
			p99:      time.Duration(kv["p99_us"]) * time.Microsecond,
			errors:   kv["err_connect"] + kv["err_read"] + kv["err_write"] + kv["err_status"] + kv["err_timeout"],
		}
		if r.requests == 0 || r.duration <= 0 {
			return r, errors.New("wrk completed no request")
		}
		return r, nil
	}
	return wrkResult{}, fmt.Errorf("no summary in wrk output: %s", strings.TrimSpace(out))
}

// rps is the request rate wrk measured.
func (r wrkResult) rps() float64 {
	return float64(r.requests) / r.duration.Seconds()
}
