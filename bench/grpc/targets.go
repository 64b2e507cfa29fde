package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Target names, in the default round order.
const (
	tDirect     = "direct"
	tSwitchyard = "switchyard"
	tCaddy      = "caddy"
)

// bench is one run. Used from the main goroutine only.
type bench struct {
	cfg      config
	tmp      string
	self     string // this program, run as the upstream and the load client
	procs    *procs
	upstream *proc
	upAddr   string
	versions map[string]string // target -> version line for the report
	targets  []string          // the targets that can run
	notes    []string
}

// sample is one measured window of one target.
type sample struct {
	loadResult
	proxyCPU time.Duration // 0 for direct
	upCPU    time.Duration
}

// prepare builds Switchyard unless given, finds Caddy and starts the
// upstream on the load CPU.
func (b *bench) prepare(ctx context.Context) error {
	b.versions = map[string]string{}
	for _, t := range b.cfg.targets {
		switch t {
		case tSwitchyard:
			if b.cfg.switchBin == "" {
				b.cfg.switchBin = filepath.Join(b.tmp, "switchyard")
				if err := buildSwitchyard(ctx, b.cfg.switchBin); err != nil {
					return err
				}
			}
			b.versions[t] = binVersion(b.cfg.switchBin)
			if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
				b.versions[t] += ", work tree at " + strings.TrimSpace(string(rev))
			}
		case tCaddy:
			if _, err := os.Stat(b.cfg.caddy); err != nil {
				note := fmt.Sprintf("caddy skipped: %s not found (scripts/bench.sh --install-only builds it, or pass -caddy)", b.cfg.caddy)
				b.notes = append(b.notes, note)
				fmt.Fprintln(os.Stderr, "bench/grpc:", note)
				continue
			}
			b.versions[t] = binVersion(b.cfg.caddy)
		}
		b.targets = append(b.targets, t)
	}
	p, err := b.procs.start("upstream", b.cfg.loadCPU, true, childEnv(), b.self, "-role", "upstream")
	if err != nil {
		return err
	}
	b.upstream = p
	if !p.lines.Scan() {
		return fmt.Errorf("upstream did not start: %s", p.stderr())
	}
	addr, ok := strings.CutPrefix(p.lines.Text(), "ready ")
	if !ok {
		return fmt.Errorf("upstream: unexpected output %q", p.lines.Text())
	}
	b.upAddr = addr
	return nil
}

// buildSwitchyard builds the gateway as shipped (deployments/Dockerfile),
// as scripts/bench.sh does for make bench.
func buildSwitchyard(ctx context.Context, out string) error {
	fmt.Fprintln(os.Stderr, "bench/grpc: building ./cmd/switchyard")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/switchyard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building ./cmd/switchyard (run from the repository root): %w", err)
	}
	return nil
}

// rounds runs every target once per round, in order. A failed window is
// a note; an interrupt ends the run.
func (b *bench) rounds(ctx context.Context) (map[string][]sample, error) {
	res := map[string][]sample{}
	for r := 1; r <= b.cfg.rounds; r++ {
		for _, t := range b.targets {
			s, err := b.measure(t)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted; every process started was stopped")
			}
			prefix := fmt.Sprintf("[round %d/%d] %-10s", r, b.cfg.rounds, t)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s FAILED: %v\n", prefix, err)
				b.notes = append(b.notes, fmt.Sprintf("round %d, %s failed: %s", r, t, oneLine(err.Error())))
				res[t] = append(res[t], sample{})
				continue
			}
			res[t] = append(res[t], s)
			fmt.Fprintf(os.Stderr, "%s %8.0f calls/s  p50 %-8s p99 %-8s proxy cpu %-6s errors %d\n",
				prefix, float64(s.Calls)/s.Window.Seconds(), s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.proxyCPU, s.Errors)
		}
	}
	return res, nil
}

// measure starts the target's proxy (none for direct), runs the load
// client against it and samples the proxy's and the upstream's CPU time
// at the edges of the measured window. The proxy is stopped afterwards.
func (b *bench) measure(t string) (sample, error) {
	addr := b.upAddr
	var proxy *proc
	if t != tDirect {
		listen, err := freeAddr()
		if err != nil {
			return sample{}, err
		}
		if proxy, err = b.startProxy(t, listen); err != nil {
			return sample{}, err
		}
		defer b.procs.stop(proxy)
		if err := waitListening(proxy, listen); err != nil {
			return sample{}, err
		}
		addr = listen
	}
	l := b.cfg.load
	load, err := b.procs.start("load", b.cfg.loadCPU, true, childEnv(), b.self, "-role", "load", "-addr", addr,
		"-callers", strconv.Itoa(l.callers), "-conns", strconv.Itoa(l.conns), "-size", strconv.Itoa(l.size),
		"-warmup", l.warmup.String(), "-duration", l.duration.String())
	if err != nil {
		return sample{}, err
	}
	defer b.procs.stop(load)
	var s sample
	var p0, p1, u0, u1 time.Duration
	var got bool
	for load.lines.Scan() {
		switch line := load.lines.Text(); line {
		case "start":
			p0, u0 = b.cpu(proxy), b.cpu(b.upstream)
		case "end":
			p1, u1 = b.cpu(proxy), b.cpu(b.upstream)
		default:
			if err := json.Unmarshal([]byte(line), &s.loadResult); err != nil {
				return sample{}, fmt.Errorf("load client output %q: %w", line, err)
			}
			got = true
		}
	}
	if err := load.wait(); err != nil {
		return sample{}, err
	}
	if !got {
		return sample{}, errNoResult
	}
	if s.Calls == 0 {
		return sample{}, fmt.Errorf("no successful call in the window (%d errors, first: %s)", s.Errors, s.Err)
	}
	s.proxyCPU, s.upCPU = p1-p0, u1-u0
	return s, nil
}

// cpu returns p's CPU time so far; 0 for no process or when unreadable.
func (b *bench) cpu(p *proc) time.Duration {
	if p == nil {
		return 0
	}
	d, _ := cpuTime(p.pid())
	return d
}

// startProxy runs the target on listen, pinned to the proxy CPU with
// GOMAXPROCS=1, proxying to the upstream over h2c.
func (b *bench) startProxy(t, listen string) (*proc, error) {
	dir, err := os.MkdirTemp(b.tmp, t+"-")
	if err != nil {
		return nil, err
	}
	env := append(childEnv(), "GOMAXPROCS=1")
	switch t {
	case tSwitchyard:
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "switchyard.yaml")
		if err := os.WriteFile(conf, []byte(switchyardConfig(listen, admin, b.upAddr)), 0o644); err != nil {
			return nil, err
		}
		return b.procs.start(t, b.cfg.proxyCPU, false, env, b.cfg.switchBin, "-config", conf)
	case tCaddy:
		conf := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(conf, []byte(caddyfile(listen, b.upAddr)), 0o644); err != nil {
			return nil, err
		}
		env = append(env, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		return b.procs.start(t, b.cfg.proxyCPU, false, env, b.cfg.caddy, "run", "--config", conf, "--adapter", "caddyfile")
	}
	return nil, fmt.Errorf("unknown target %q", t)
}

// switchyardConfig is the gateway on an h2c listener with one grpc
// service (h2c to the upstream, gRPC health probes) and a catch-all route.
func switchyardConfig(listen, admin, upstream string) string {
	return fmt.Sprintf(`listen: %s
server:
  h2c: true
admin:
  listen: %s
log:
  level: warn
services:
  - name: bench
    protocol: grpc
    health:
      type: grpc
    instances:
      - address: %s
routes:
  - path_prefix: /
    service: bench
`, listen, admin, upstream)
}

// caddyfile is Caddy speaking h2c on its listener and to the upstream,
// with no admin API, no HTTPS and no access log.
func caddyfile(listen, upstream string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	skip_install_trust
	servers {
		protocols h1 h2 h2c
	}
	log default {
		output stderr
		level WARN
	}
}

http://%s {
	reverse_proxy h2c://%s {
		transport http {
			versions h2c 2
		}
	}
}
`, listen, upstream)
}

// waitListening polls until the proxy accepts connections, for at most
// ten seconds, failing early if it exits.
func waitListening(p *proc, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if err := syscallAlive(p.pid()); err != nil {
			return fmt.Errorf("%s exited: %s", p.name, p.stderr())
		}
		time.Sleep(20 * time.Millisecond) // polling a starting process
	}
	return fmt.Errorf("%s not listening on %s after 10s: %s", p.name, addr, p.stderr())
}

// syscallAlive reports an error when pid is gone or a zombie.
func syscallAlive(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return fmt.Errorf("process %d exited", pid)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// childEnv is the environment without settings that would change what
// is measured (GOMAXPROCS, GOGC, OTEL_*, SWITCHYARD_*).
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "GOMAXPROCS" || k == "GOGC" || k == "GOMEMLIMIT" || strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "SWITCHYARD_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// binVersion describes a Go binary from its build information: main
// module, its version or VCS revision, and the Go version.
func binVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v = "commit " + s.Value[:12]
		}
	}
	return fmt.Sprintf("%s %s, %s", bi.Main.Path, v, bi.GoVersion)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
