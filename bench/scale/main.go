// Command scale measures Consul discovery at catalog scale (make
// bench-scale): a real `consul agent -dev` holding N opted-in services of
// M instances each, every instance with a service check, and the Consul
// source of package discovery running in this process within its
// connection budget.
//
// For each catalog size it prints: the time to full convergence; requests/s
// and bytes/s to and from the agent, counted at the source's dialer, at
// steady state and under churn; change-to-snapshot p50/p99 under a steady
// rate of changes (registrations, deregistrations, check status changes,
// tag changes in turn); the CPU and RSS of this process at steady state;
// the connections to the agent counted by the kernel (/proc/net/tcp). It
// also prints what one blocking query per service and re-fetching every
// service on every change would cost, computed from the measured answer
// sizes (see docs/consul-scale.md).
//
//	go run ./bench/scale -services 1000,5000 -instances 4 -out bench/results/scale.md
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

func main() {
	var (
		sizes     = flag.String("services", "1000,5000", "catalog sizes to measure, comma-separated")
		instances = flag.Int("instances", 4, "instances per service")
		rate      = flag.Float64("rate", 20, "changes per second under churn")
		churn     = flag.Duration("churn", 20*time.Second, "duration of the churn phase")
		steady    = flag.Duration("steady", 10*time.Second, "duration of the steady-state window")
		budget    = flag.Int("max-connections", 4, "discovery.consul.max_connections")
		out       = flag.String("out", "", "also write the markdown table here")
		summary   = flag.Bool("summary", true, "let the catalog detector read Consul's per-service summary (false: /v1/catalog/services, sweeps find instance changes)")
	)
	flag.Parse()
	bin, err := consulBinary()
	if err != nil {
		log.Fatal(err)
	}
	var results []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-services: bad size %q", s)
		}
		r, err := measure(bin, params{services: n, instances: *instances, rate: *rate, churn: *churn, steady: *steady, budget: *budget, noSummary: !*summary})
		if err != nil {
			log.Fatalf("%d services: %v", n, err)
		}
		results = append(results, r)
	}
	table := report(results, *instances, *rate, *budget, *summary)
	fmt.Print(table)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

type params struct {
	services, instances int
	rate                float64
	churn, steady       time.Duration
	budget              int
	noSummary           bool
}

// measure runs one catalog size on a fresh agent.
func measure(bin string, p params) (result, error) {
	agent, err := startAgent(bin)
	if err != nil {
		return result{}, err
	}
	defer agent.stop()
	conf := api.DefaultNonPooledConfig()
	conf.Address, conf.Token = agent.other, ""
	client, err := api.NewClient(conf)
	if err != nil {
		return result{}, err
	}
	cat := newCatalog(p.services, p.instances)
	start := time.Now()
	if err := cat.registerAll(client); err != nil {
		return result{}, err
	}
	log.Printf("%d services: registered %d instances in %s", p.services, p.services*p.instances, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := startWatcher(ctx, agent.addr, p.budget, p.noSummary, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return result{}, err
	}
	r := result{services: p.services}
	if r.converge, err = w.waitConverged(cat, 5*time.Minute); err != nil {
		return r, err
	}
	r.convergeCost = meterNow(w.meter)
	log.Printf("%d services: converged in %s", p.services, r.converge.Round(time.Millisecond))

	r.steady = w.window(p.steady, nil)
	r.steadyCPU, r.rss = r.steady.cpu, rssBytes()
	r.conns = establishedTo(agent.addr)
	r.catalogBody = catalogBytes(agent.other)

	ch := newChurn(cat, client, w)
	churnStart := time.Now()
	r.churn = w.window(p.churn, func(ctx context.Context) { ch.run(ctx, p.rate) })
	r.latencies = ch.wait(10 * time.Second)
	r.breakdown = breakDown(r.latencies, w.traced(churnStart))
	r.connsChurn = max(establishedTo(agent.addr), ch.maxConns)
	r.missed = ch.missed()
	log.Printf("%d services: %d changes, %d missed", p.services, len(r.latencies), r.missed)
	return r, nil
}

// agent is a dev agent started by the benchmark.
type agent struct {
	addr  string // for the source
	other string // for everything else
	cmd   *exec.Cmd
	dir   string
}

func startAgent(bin string) (*agent, error) {
	dir, err := os.MkdirTemp("", "bench-scale-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	// The source talks to 127.0.0.1, the benchmark's own client (catalog
	// writes) to 127.0.0.2, so the kernel's count of connections to
	// addr is the source's alone.
	a := &agent{addr: "127.0.0.1:" + strconv.Itoa(ports[0]), other: "127.0.0.2:" + strconv.Itoa(ports[0]), dir: dir}
	a.cmd = exec.Command(bin, "agent", "-dev", "-node=bench", "-bind=127.0.0.1", "-client=127.0.0.1 127.0.0.2",
		"-http-port="+strconv.Itoa(ports[0]), "-server-port="+strconv.Itoa(ports[1]),
		"-serf-lan-port="+strconv.Itoa(ports[2]), "-serf-wan-port="+strconv.Itoa(ports[3]),
		"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1", "-https-port=-1", "-log-level=warn")
	logf, err := os.Create(filepath.Join(dir, "consul.log"))
	if err != nil {
		return nil, err
	}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	// The agent dies with the benchmark, however the benchmark ends.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitLeader(a.addr, 30*time.Second); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

// stop kills the agent by PID and removes its directory.
func (a *agent) stop() {
	if a.cmd.Process != nil {
		a.cmd.Process.Kill()
		a.cmd.Wait()
	}
	os.RemoveAll(a.dir)
}

// consulBinary returns the consul binary scripts/tools.sh provides.
func consulBinary() (string, error) {
	out, err := exec.Command("bash", "scripts/tools.sh", "consul").Output()
	if err != nil {
		return "", fmt.Errorf("scripts/tools.sh consul (run from the repository root): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
