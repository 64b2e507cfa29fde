package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type report struct {
	n, listeners, workers int
	interval, duration    time.Duration
	firstRound            time.Duration
	cpu                   float64 // seconds of user+system CPU in the window
	idleRSS, rss          int64   // KiB
	heap                  uint64  // live heap after GC, bytes
	idleG, goroutines     int
	accepted, open        int64
	acceptedWindow        int64
	probes, failed        int64
	latency               time.Duration // mean
	telemetry             bool
	buckets               []atomic.Int64
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (r report) markdown() string {
	var b strings.Builder
	maxB, sum, empty := int64(0), int64(0), 0
	counts := make([]int64, len(r.buckets))
	for i := range r.buckets {
		v := r.buckets[i].Load()
		counts[i] = v
		sum += v
		maxB = max(maxB, v)
		if v == 0 {
			empty++
		}
	}
	slices.Sort(counts)
	p10, p50, p90 := counts[len(counts)/10], counts[len(counts)/2], counts[len(counts)*9/10]
	mean := float64(sum) / float64(len(r.buckets))
	thousands := float64(r.n) / 1000
	cpuPct := r.cpu / r.duration.Seconds() * 100
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	flags := ""
	if r.telemetry {
		flags = " -telemetry"
	}
	fmt.Fprintf(&b, "## %d instances, health.max_concurrent_probes %d%s\n\n", r.n, r.workers, flags)
	fmt.Fprintf(&b, "- **Date**: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- **Machine**: %d CPUs, host %s, %s; load average at the end %s. Shared with other engineers' builds and tests while measured: CPU figures are upper bounds, take them as an order of magnitude.\n",
		runtime.NumCPU(), host, runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "- **Setup**: %d instances (%d services x 4) on %d loopback listeners (net/http, keep-alive, in a child process not counted here); health.interval %s, jitter 10%%, timeout 1s, health.max_concurrent_probes %d. The first probe round took %s; measuring starts 1.5 intervals after it and lasts %s.\n",
		r.n, (r.n+3)/4, r.listeners, r.interval, r.workers, r.firstRound.Round(time.Millisecond), r.duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "- **Command**: `go run ./bench/probescale -instances %d -duration %s -workers %d%s`\n\n", r.n, r.duration.Round(time.Second), r.workers, flags)
	fmt.Fprintf(&b, "| measure | value | target |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| probes in the window | %d (%.0f/s, %d failed) | %.0f/s expected |\n", r.probes, float64(r.probes)/r.duration.Seconds(), r.failed, float64(r.n)/r.interval.Seconds())
	fmt.Fprintf(&b, "| mean probe latency, and probes in flight by Little's law | %s, %.0f | |\n", r.latency.Round(10*time.Microsecond), float64(r.probes)/r.duration.Seconds()*r.latency.Seconds())
	fmt.Fprintf(&b, "| CPU, whole process (getrusage) | %.2f%% of one core | |\n", cpuPct)
	fmt.Fprintf(&b, "| CPU per 1,000 instances | %.3f%% of one core | <= 3%% |\n", cpuPct/thousands)
	fmt.Fprintf(&b, "| RSS idle checker / with instances | %.1f / %.1f MiB | |\n", float64(r.idleRSS)/1024, float64(r.rss)/1024)
	fmt.Fprintf(&b, "| RSS per instance above idle | %.0f B | <= 4096 B |\n", float64(r.rss-r.idleRSS)*1024/float64(r.n))
	fmt.Fprintf(&b, "| live heap per instance (after GC) | %.0f B | |\n", float64(r.heap)/float64(r.n))
	fmt.Fprintf(&b, "| goroutines idle / with instances | %d / %d | no goroutine per instance |\n", r.idleG, r.goroutines)
	fmt.Fprintf(&b, "| probe starts per 100 ms: max / mean | %d / %.1f (%.2fx) | even spread |\n", maxB, mean, float64(maxB)/mean)
	fmt.Fprintf(&b, "| probe starts per 100 ms: p10 / p50 / p90 | %d / %d / %d | |\n", p10, p50, p90)
	fmt.Fprintf(&b, "| 100 ms buckets with no probe start (process not scheduled) | %d of %d | 0 on a quiet machine |\n", empty, len(counts))
	fmt.Fprintf(&b, "| connections accepted by the listeners: in the window / whole run / open at the end | %d / %d / %d | keep-alive: 0 in the window |\n", r.acceptedWindow, r.accepted, r.open)
	return b.String()
}
