// Command probescale measures what active health probing costs the gateway
// at catalog scale: it runs the gateway's health.Checker over N instances
// (services of four instances each) that point at a handful of loopback
// listeners, and reports, over a fixed window after the first probe round,
// the CPU the process spent per 1,000 instances, its RSS above the idle
// checker, goroutines, how evenly probe starts spread over 100 ms buckets,
// and the connections the listeners accepted.
//
//	go run ./bench/probescale -instances 20000 -duration 30s [-o bench/results/probe-scale.md]
//
// PROBESCALE_BUCKETS=1 also prints the probe starts of every 100 ms bucket
// to stderr. The listeners run in a child process (this program started with -serve),
// so their CPU and memory are not counted. They are minimal net/http
// servers with keep-alive answering 200 "ok".
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/health"
	"github.com/switchyard-gw/switchyard/telemetry"
)

func main() {
	serve := flag.Int("serve", 0, "internal: serve this many listeners and print their addresses")
	instances := flag.Int("instances", 20000, "instances to probe (services of 4 instances)")
	listeners := flag.Int("listeners", 4, "loopback listeners the instances point at")
	duration := flag.Duration("duration", 30*time.Second, "measured window")
	interval := flag.Duration("interval", 5*time.Second, "health.interval")
	workers := flag.Int("workers", config.Default().Health.MaxConcurrentProbes, "health.max_concurrent_probes")
	out := flag.String("o", "", "also write the report (markdown) to this file")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the measured window to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile at the end of the window to this file")
	withTelemetry := flag.Bool("telemetry", false, "also record every probe into the gateway's metrics (telemetry defaults), as the gateway does")
	flag.Parse()
	if *serve > 0 {
		serveListeners(*serve)
		return
	}
	cpuProfile, heapProfile, useTelemetry = *profile, *memProfile, *withTelemetry
	if err := run(*instances, *listeners, *duration, *interval, *workers, *out); err != nil {
		fmt.Fprintln(os.Stderr, "probescale:", err)
		os.Exit(1)
	}
}

type setter struct{ calls atomic.Int64 }

func (s *setter) SetHealthy(string, []discovery.Instance, bool) { s.calls.Add(1) }

// window counts probe starts per 100 ms bucket of the measured window.
// Probes before start (unix nanoseconds, set once measuring begins) and
// after its last bucket are not counted.
type window struct {
	start   atomic.Int64
	buckets []atomic.Int64
	failed  atomic.Int64
	total   atomic.Int64
	latency atomic.Int64 // nanoseconds, summed
}

func (w *window) onProbe(_, _ string, latency time.Duration, err error) {
	s := w.start.Load()
	if s == 0 {
		return
	}
	i := int((time.Now().Add(-latency).UnixNano() - s) / int64(100*time.Millisecond))
	if i < 0 || i >= len(w.buckets) {
		return
	}
	w.buckets[i].Add(1)
	w.total.Add(1)
	w.latency.Add(int64(latency))
	if err != nil {
		w.failed.Add(1)
	}
}

func run(n, listeners int, duration, interval time.Duration, workers int, out string) error {
	child, addrs, err := startListeners(listeners)
	if err != nil {
		return err
	}
	defer child.stop()

	h := config.Default().Health
	h.Interval, h.MaxConcurrentProbes = interval, workers
	win := &window{buckets: make([]atomic.Int64, int(duration/(100*time.Millisecond)))}
	c, stop, err := startChecker(h, win)
	if err != nil {
		return err
	}
	defer stop()

	settle()
	idleRSS := rssKiB()
	idleG := runtime.NumGoroutine()

	snap := snapshot(n, addrs)
	began := time.Now()
	c.Update(snap)
	for !c.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	firstRound := time.Since(began)
	// One more interval so that the first round's catch-up is over.
	time.Sleep(interval + interval/2)

	began = time.Now()
	win.start.Store(began.UnixNano())
	accepted0, _ := child.stats()
	stopProfile := startProfile()
	cpu0 := cpuSeconds()
	time.Sleep(duration)
	cpu := cpuSeconds() - cpu0
	stopProfile()
	elapsed := time.Since(began)
	rss := rssKiB()
	goroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if heapProfile != "" {
		if f, err := os.Create(heapProfile); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	accepted, open := child.stats()

	r := report{
		n: n, listeners: listeners, interval: interval, workers: workers, duration: elapsed,
		firstRound: firstRound, cpu: cpu, idleRSS: idleRSS, rss: rss, heap: ms.HeapAlloc,
		idleG: idleG, goroutines: goroutines, accepted: accepted, acceptedWindow: accepted - accepted0, open: open,
		probes: win.total.Load(), failed: win.failed.Load(), buckets: win.buckets,
		latency:   time.Duration(win.latency.Load() / max(1, win.total.Load())),
		telemetry: useTelemetry,
	}
	return r.write(win, out)
}

// write prints r, and the per-bucket probe counts of win to stderr when
// PROBESCALE_BUCKETS is set; out, when not empty, gets a copy of r.
func (r report) write(win *window, out string) error {
	if os.Getenv("PROBESCALE_BUCKETS") != "" {
		for i := range win.buckets {
			fmt.Fprint(os.Stderr, win.buckets[i].Load(), " ")
		}
		fmt.Fprintln(os.Stderr)
	}
	text := r.markdown()
	fmt.Print(text)
	if out != "" {
		return os.WriteFile(out, []byte(text), 0o644)
	}
	return nil
}

// startChecker runs a health Checker with defaults h whose probes are
// counted in win (and recorded by telemetry when useTelemetry is set).
// stop ends it and waits for it.
func startChecker(h config.Health, win *window) (c *health.Checker, stop func(), err error) {
	var shutdown func()
	onProbe := win.onProbe
	if useTelemetry {
		tel, err := telemetry.New(context.Background(), telemetry.Options{Config: config.Default().Telemetry, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		shutdown = func() { tel.Shutdown(context.Background()) }
		if hook := tel.ProbeHook(); hook != nil {
			onProbe = func(service, id string, latency time.Duration, err error) {
				hook(service, id, latency, err)
				win.onProbe(service, id, latency, err)
			}
		}
	}
	c = health.New(health.Options{
		Defaults: h, Setter: &setter{}, Logger: slog.New(slog.DiscardHandler),
		OnProbe: onProbe,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return c, func() {
		cancel()
		<-done
		if shutdown != nil {
			shutdown()
		}
	}, nil
}

// Flags read by run and startProfile.
var (
	cpuProfile   string // the file startProfile writes
	heapProfile  string
	useTelemetry bool
)

func startProfile() (stop func()) {
	if cpuProfile == "" {
		return func() {}
	}
	f, err := os.Create(cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		return func() {}
	}
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func snapshot(n int, addrs []string) discovery.Snapshot {
	var snap discovery.Snapshot
	for i := 0; i < n; i += 4 {
		svc := discovery.Service{Name: fmt.Sprintf("svc-%05d", i/4)}
		for j := i; j < i+4 && j < n; j++ {
			svc.Instances = append(svc.Instances, discovery.Instance{
				ID:       fmt.Sprintf("node-%d/svc-%05d-%d", j%7, i/4, j-i),
				Address:  addrs[j%len(addrs)],
				Registry: discovery.RegistryHealth{Status: discovery.StatusPassing},
			})
		}
		snap.Services = append(snap.Services, svc)
	}
	return snap
}

// settle returns memory to the OS so RSS readings compare.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(200 * time.Millisecond)
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kib int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmRSS:"), "kB")), &kib)
			return kib
		}
	}
	return 0
}

// listenerProc is the child process serving the listeners.
type listenerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startListeners starts this program with -serve and reads the addresses
// it prints, one a line.
func startListeners(n int) (*listenerProc, []string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	p := &listenerProc{cmd: exec.Command(self, "-serve", fmt.Sprint(n))}
	p.cmd.Stderr = os.Stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return nil, nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	p.out = bufio.NewReader(stdout)
	if err := p.cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting listeners: %w", err)
	}
	var addrs []string
	for range n {
		line, err := p.out.ReadString('\n')
		if err != nil {
			p.stop()
			return nil, nil, fmt.Errorf("reading listener addresses: %w", err)
		}
		addrs = append(addrs, strings.TrimSpace(line))
	}
	return p, addrs, nil
}

// stop ends the child: it exits when its stdin closes.
func (p *listenerProc) stop() {
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// stats asks the child for the connections its listeners accepted so far
// and hold open now.
func (p *listenerProc) stats() (accepted, open int64) {
	fmt.Fprintln(p.in, "stats")
	line, err := p.out.ReadString('\n')
	if err != nil {
		return -1, -1
	}
	fmt.Sscan(line, &accepted, &open)
	return accepted, open
}
