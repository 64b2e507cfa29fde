package tracecost

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

var (
	requests = flag.Int("requests", 40000, "requests per gateway")
	turn     = flag.Int("turn", 500, "requests per turn; gateways take turns")
	conns    = flag.Int("conns", 8, "concurrent keep-alive connections of the load generator")
)

// mode is one gateway configuration under test.
type mode struct {
	name string
	env  []string
}

// gw is one running gateway process.
type gw struct {
	mode
	proc   *testenv.Process
	addr   string
	admin  string
	rounds []time.Duration // CPU used in each round
	sent   int64
}

// BenchmarkTraceCost measures requests per CPU-second of the gateway
// process (its own threads only, from /proc/<pid>/task/*/schedstat) for
// several telemetry settings side by side. All gateways run for the whole
// measurement and take turns of -turn requests; a round is one turn each,
// in random order, and each gateway's CPU is read at round boundaries,
// so export work done in the background is charged to the gateway that
// did it. Other load on the machine hits all gateways alike within a
// round; the median over rounds of each gateway's CPU relative to "off"
// is the cost figure, the totals are shown too. It does a fixed amount of
// work whatever b.N, so it runs once:
//
//	go test -run '^$' -bench TraceCost ./bench/tracecost/ -args -requests 40000
//
// Rows: "disabled" (OTEL_SDK_DISABLED=true: no hooks), "off" (the default:
// metrics, no trace endpoint), "0%", "1%" and "100%" (parent-based ratio
// sampling, OTLP/gRPC to a live Jaeger; 0% isolates the cost of the
// unsampled path: trace context propagated, nothing recorded).
func BenchmarkTraceCost(b *testing.B) {
	bin := testenv.BuildBinary(b, "./cmd/switchyard")
	j := testenv.StartJaeger(b)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	b.Cleanup(backend.Close)

	tracing := func(ratio string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.OTLPGRPC, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=" + ratio}
	}
	modes := []mode{
		{"disabled", []string{"OTEL_SDK_DISABLED=true"}},
		{"off", nil},
		{"0%", tracing("0")},
		{"1%", tracing("0.01")},
		{"100%", tracing("1")},
	}
	gws := make([]*gw, len(modes))
	for i, m := range modes {
		gws[i] = startGateway(b, bin, m, strings.TrimPrefix(backend.URL, "http://"))
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}}
	for _, g := range gws { // warm up connections, pools and caches
		load(b, client, g, 1000)
		g.sent = 0
	}
	b.ResetTimer()
	start := time.Now()
	prev := make([]time.Duration, len(gws))
	for i, g := range gws {
		prev[i] = cpuTime(b, g.proc.Cmd.Process.Pid)
	}
	for r := 0; r*(*turn) < *requests; r++ {
		n := min(*turn, *requests-r*(*turn))
		// A new order every round: no gateway always follows the same one
		// (whose background export work could slow it down).
		for _, k := range rand.Perm(len(gws)) {
			load(b, client, gws[k], n)
		}
		for i, g := range gws {
			now := cpuTime(b, g.proc.Cmd.Process.Pid)
			g.rounds = append(g.rounds, now-prev[i])
			prev[i] = now
		}
	}
	wall := time.Since(start)
	b.StopTimer()
	// Spans still queued are exported within the 5s batch delay; charge
	// that work to the last round.
	time.Sleep(6 * time.Second)
	for i, g := range gws {
		now := cpuTime(b, g.proc.Cmd.Process.Pid)
		g.rounds[len(g.rounds)-1] += now - prev[i]
		prev[i] = now
	}
	// What each gateway burns with no traffic at all, for reading the rows:
	// a fixed background cost weighs more the less load a gateway gets.
	const idleFor = 5 * time.Second
	time.Sleep(idleFor)
	idle := make([]time.Duration, len(gws))
	for i, g := range gws {
		idle[i] = cpuTime(b, g.proc.Cmd.Process.Pid) - prev[i]
	}

	var off *gw
	for _, g := range gws {
		if g.name == "off" {
			off = g
		}
	}
	var rows []string
	for gi, g := range gws {
		var total time.Duration
		ratios := make([]float64, len(g.rounds))
		for i, d := range g.rounds {
			total += d
			ratios[i] = float64(d) / float64(off.rounds[i])
		}
		slices.Sort(ratios)
		median := ratios[len(ratios)/2]
		perCPU := float64(g.sent) / total.Seconds()
		b.ReportMetric(perCPU, "req/cpu-s("+g.name+")")
		rows = append(rows, fmt.Sprintf("%-9s %7d req %6.2fs cpu %7.0f req/cpu-s %5.1fµs cpu/req | vs off: total %+6.1f%%, median of %d rounds %+6.1f%% (IQR %+.1f%% .. %+.1f%%) | dropped spans %s",
			g.name, g.sent, total.Seconds(), perCPU, total.Seconds()/float64(g.sent)*1e6,
			(float64(total)/float64(sum(off.rounds))-1)*100, len(ratios), (median-1)*100,
			(ratios[len(ratios)/4]-1)*100, (ratios[len(ratios)*3/4]-1)*100, dropped(g)))
		rows[len(rows)-1] += fmt.Sprintf(" | idle %.1fms cpu/s, load %.2f cores", float64(idle[gi])/float64(idleFor)*1000, total.Seconds()/wall.Seconds())
	}
	traces, err := j.Traces("tracecost-100%")
	b.Logf("gateway CPU over %s of interleaved load (%d conns, turns of %d requests):\n%s\njaeger holds %d traces of tracecost-100%% (query limit 1000; err %v)",
		wall.Round(time.Millisecond), *conns, *turn, strings.Join(rows, "\n"), len(traces), err)
}

func sum(ds []time.Duration) (t time.Duration) {
	for _, d := range ds {
		t += d
	}
	return t
}

func startGateway(b *testing.B, bin string, m mode, backend string) *gw {
	b.Helper()
	g := &gw{mode: m, addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b)), admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))}
	env := append([]string{
		"SWITCHYARD_LISTEN=" + g.addr,
		"SWITCHYARD_ADMIN_LISTEN=" + g.admin,
		"SWITCHYARD_BACKENDS=" + backend,
		"SWITCHYARD_LOG_LEVEL=warn",
		"OTEL_SERVICE_NAME=tracecost-" + m.name,
		// Whatever the machine sets must not change the rows.
		"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_TRACES_SAMPLER=", "OTEL_SDK_DISABLED=",
	}, m.env...)
	g.proc = testenv.Start(b, env, bin)
	testenv.WaitFor(b, 15*time.Second, m.name+" gateway ready", func() bool {
		resp, err := http.Get("http://" + g.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return g
}

// load sends n GETs to g over -conns connections and fails on any non-200.
func load(b *testing.B, c *http.Client, g *gw, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	url := "http://" + g.addr + "/items/1"
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := c.Get(url)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Store("status " + resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatalf("%s gateway: %v", g.name, f)
	}
	g.sent += int64(n)
}

// cpuTime returns the CPU time of pid's threads in nanoseconds: the first
// field of each /proc/<pid>/task/<tid>/schedstat, exact to the nanosecond
// where /proc/<pid>/stat counts 10ms ticks. The time of a thread that
// exited is lost; the Go runtime keeps its threads.
func cpuTime(b *testing.B, pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("reading CPU time of %d: %v", pid, err)
	}
	var total time.Duration
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// dropped reads the gateway's dropped-span counter from /metrics.
func dropped(g *gw) string {
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "switchyard_telemetry_spans_dropped_total") {
			return strings.Fields(line)[1]
		}
	}
	return "-"
}
