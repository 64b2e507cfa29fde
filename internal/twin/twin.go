// Package twin runs the topology of docker-compose.yml as local processes,
// for machines without a Docker engine: a real Consul dev agent and a real
// Jaeger (the binaries scripts/tools.sh provides), and the project's own
// programs built with go build, each started with exactly the command and
// environment its compose service has, after one rewrite: every compose
// address (consul:8500, http://jaeger:4317, backend-1:9000, and listen
// addresses 0.0.0.0:9000) becomes 127.0.0.1 and a port of its own per
// (service, port). The mapping is a table (Topology.Ports) that the owner
// prints.
//
// It is not Docker: no images, no container network or DNS, no engine
// ordering by healthcheck, no distroless user. What it checks is the
// topology's wiring (commands, environments, addresses, who registers
// where); a run under a real Docker engine is tested separately. `make demo`
// (cmd/demo) runs it for a person; the test in this directory runs it on
// free ports.
package twin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-gw/switchyard/internal/jaegerconf"
)

// stopGrace is how long a process may take to exit after SIGTERM before
// its process group is killed.
const stopGrace = 10 * time.Second

// Options configure Start. The zero value runs the docker-compose.yml of
// the repository holding the working directory, every port a free random
// one, and logs nothing.
type Options struct {
	// Root is the repository root; "" finds it upwards from the working
	// directory (the first directory with go.mod and docker-compose.yml).
	Root string
	// ComposeFile is the compose file; "" is Root/docker-compose.yml.
	ComposeFile string
	// PublishedPorts makes every endpoint the compose file publishes on
	// the host use that host port (8080, 9901, 8500, ...), when it is
	// free; otherwise, and for the other endpoints, a free random port.
	PublishedPorts bool
	// Dir receives the built binaries, generated configuration and one
	// log file per service. "" is a new temporary directory that Stop
	// removes; a given Dir is left in place.
	Dir string
	// Log receives progress lines and the port mapping; nil discards them.
	// Process output goes to the log files, never here.
	Log io.Writer
}

// Topology is a running twin. Its methods are safe for concurrent use.
type Topology struct {
	// Dir holds bin/ (the built programs), the generated configuration and
	// a log file per service, <service>.log.
	Dir string

	ports    []PortMapping
	services []*Service // by start level, then name
	byName   map[string]*Service
	ownDir   bool
	log      io.Writer
	exits    chan string

	stopOnce sync.Once
	stopErr  error
}

// Service is one compose service running as a process.
type Service struct {
	Name string
	// Program is "consul", "jaeger", or the command of this module the
	// service's Dockerfile target runs ("switchyard", "demo-backend").
	Program string
	// Path is the executable; Args its arguments: the compose command
	// with addresses rewritten (for consul, followed by the flags that
	// put each of its ports where the mapping says).
	Path string
	Args []string
	// Env is the compose environment with addresses rewritten, as sorted
	// KEY=VALUE. The process gets it on top of the twin's own environment
	// minus every SWITCHYARD_, DEMO_, CONSUL_ and OTEL_ variable, as a
	// container would not see them either.
	Env []string
	// LogFile receives the process's standard output and error.
	LogFile string

	env   map[string]string
	level int

	mu   sync.Mutex
	proc *process
}

// PID returns the process id of the running process, 0 if it is stopped.
func (s *Service) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.pid()
}

// Start starts every service of the compose file in depends_on order,
// each level once the previous one is ready, and returns when all of them
// are ready: Consul has a leader, Jaeger is healthy, every published port
// accepts connections and the gateway's /readyz answers 200. ctx bounds
// the start-up only. On error, everything started has been stopped.
func Start(ctx context.Context, opt Options) (*Topology, error) {
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	root := opt.Root
	if root == "" {
		var err error
		if root, err = findRoot(); err != nil {
			return nil, err
		}
	}
	compose := opt.ComposeFile
	if compose == "" {
		compose = filepath.Join(root, "docker-compose.yml")
	}
	planned, err := loadCompose(compose, root)
	if err != nil {
		return nil, err
	}

	ports := planPorts(planned)
	if err := allocatePorts(ports, opt.PublishedPorts, func(m PortMapping, err error) {
		fmt.Fprintf(logw, "twin: host port %d for %s is taken (%v); using a free one\n", m.Published, m.Endpoint, err)
	}); err != nil {
		return nil, err
	}
	t := &Topology{Dir: opt.Dir, ports: ports, byName: map[string]*Service{}, log: logw}
	if t.Dir == "" {
		if t.Dir, err = os.MkdirTemp("", "switchyard-twin-"); err != nil {
			return nil, err
		}
		t.ownDir = true
	}
	fmt.Fprintf(logw, "twin: %s as processes; compose addresses map to:\n", compose)
	writeMapping(logw, ports)

	if err := t.plan(ctx, root, planned); err != nil {
		t.removeDir()
		return nil, err
	}
	t.exits = make(chan string, 4*len(t.services))
	for level := 0; level <= t.services[len(t.services)-1].level; level++ {
		if err := t.startLevel(ctx, level); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// plan resolves every service's program, arguments and environment, and
// builds the programs of this module.
func (t *Topology) plan(ctx context.Context, root string, planned []*service) error {
	names := map[string]bool{}
	for _, p := range planned {
		names[p.name] = true
	}
	lookup := func(ep Endpoint) int { return t.mapping(ep).HostPort }
	binDir := filepath.Join(t.Dir, "bin")
	var build []string
	for _, p := range planned {
		s := &Service{
			Name:    p.name,
			Program: p.program,
			LogFile: filepath.Join(t.Dir, p.name+".log"),
			env:     map[string]string{},
			level:   p.level,
		}
		for _, a := range p.command {
			s.Args = append(s.Args, rewrite(a, p.name, names, lookup, nil))
		}
		for _, k := range slices.Sorted(maps.Keys(p.env)) {
			s.env[k] = rewrite(p.env[k], p.name, names, lookup, nil)
			s.Env = append(s.Env, k+"="+s.env[k])
		}
		switch p.program {
		case programConsul:
			port := func(n int) string { return strconv.Itoa(lookup(Endpoint{p.name, n})) }
			s.Args = append(s.Args,
				"-node="+p.name, "-bind="+loopback,
				"-http-port="+port(8500), "-server-port="+port(8300),
				"-serf-lan-port="+port(8301), "-serf-wan-port="+port(8302),
				// Not used by the topology, so not started: nothing
				// listens on a default port.
				"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1", "-https-port=-1",
			)
		case programJaeger:
			cfg := filepath.Join(t.Dir, p.name+".yaml")
			addr := func(n int) string { return t.Addr(p.name, n) }
			body := jaegerconf.Config(jaegerconf.Addrs{Health: addr(14269), QueryHTTP: addr(16686), QueryGRPC: addr(16685), OTLPGRPC: addr(4317), OTLPHTTP: addr(4318)}, "info")
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				return err
			}
			s.Args = []string{"--config", "file:" + cfg}
		default:
			s.Path = filepath.Join(binDir, p.program)
			if !slices.Contains(build, "./cmd/"+p.program) {
				build = append(build, "./cmd/"+p.program)
			}
		}
		t.services = append(t.services, s)
		t.byName[s.Name] = s
	}

	tools := map[string]string{}
	for _, s := range t.services {
		if s.Program != programConsul && s.Program != programJaeger {
			continue
		}
		if tools[s.Program] == "" {
			path, err := tool(ctx, root, s.Program, t.log)
			if err != nil {
				return err
			}
			tools[s.Program] = path
		}
		s.Path = tools[s.Program]
	}
	if len(build) > 0 {
		fmt.Fprintf(t.log, "twin: go build %s\n", strings.Join(build, " "))
		cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, build...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", strings.Join(build, " "), err, out)
		}
	}
	return nil
}

// startLevel starts the services of one start level and waits until all
// of them are ready.
func (t *Topology) startLevel(ctx context.Context, level int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(t.services))
	for i, s := range t.services {
		if s.level != level {
			continue
		}
		wg.Go(func() { errs[i] = t.startService(ctx, s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startService starts s and waits until it is ready.
func (t *Topology) startService(ctx context.Context, s *Service) error {
	begin := time.Now()
	env := append(baseEnv(), s.Env...)
	p, err := startProcess(s.Path, s.Args, env, s.LogFile)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	go func() {
		<-p.done
		if !p.stopping.Load() {
			select {
			case t.exits <- s.Name:
			default:
			}
		}
	}()
	check, timeout := t.readiness(s)
	if err := waitReady(ctx, p, check, timeout); err != nil {
		return fmt.Errorf("%s (pid %d): %w; its log %s ends:\n%s", s.Name, p.pid(), err, s.LogFile, tail(s.LogFile, 3000))
	}
	how := strings.Join(append([]string{filepath.Base(s.Path)}, s.Args...), " ")
	if len(s.Env) > 0 {
		how = strings.Join(s.Env, " ") + " " + how
	}
	fmt.Fprintf(t.log, "twin: %-11s ready in %4.1fs  pid %-7d %s\n", s.Name, time.Since(begin).Seconds(), p.pid(), how)
	return nil
}

// StartService starts a stopped service again, with the same command,
// environment and ports, and waits until it is ready (like `docker compose
// start`).
func (t *Topology) StartService(ctx context.Context, name string) error {
	s := t.byName[name]
	if s == nil {
		return fmt.Errorf("no service %q", name)
	}
	if s.PID() != 0 {
		return fmt.Errorf("%s is running", name)
	}
	return t.startService(ctx, s)
}

// StopService stops one service gracefully (like `docker compose stop`):
// SIGTERM, and SIGKILL to its process group if it has not exited within
// 10 s. It returns once the process has exited.
func (t *Topology) StopService(name string) error {
	s := t.byName[name]
	if s == nil {
		return fmt.Errorf("no service %q", name)
	}
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	p.stopping.Store(true)
	if err := p.stop(stopGrace); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Stop stops every service, in the reverse of the start order (the
// gateway and the backends before Consul and Jaeger, so the backends can
// deregister and the gateway can flush its spans), and removes Dir if
// Start created it. Calling it again returns the first result.
func (t *Topology) Stop() error {
	t.stopOnce.Do(func() {
		var errs []error
		for level := t.services[len(t.services)-1].level; level >= 0; level-- {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, s := range t.services {
				if s.level != level {
					continue
				}
				wg.Go(func() {
					if err := t.StopService(s.Name); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
		}
		t.removeDir()
		t.stopErr = errors.Join(errs...)
	})
	return t.stopErr
}

func (t *Topology) removeDir() {
	if t.ownDir {
		os.RemoveAll(t.Dir)
	}
}

// Exited receives the name of each service whose process exits without
// StopService or Stop having stopped it.
func (t *Topology) Exited() <-chan string { return t.exits }

// Services returns every service in start order.
func (t *Topology) Services() []*Service { return slices.Clone(t.services) }

// Service returns the service called name, or nil.
func (t *Topology) Service(name string) *Service { return t.byName[name] }

// Ports returns the port mapping, sorted by service and port.
func (t *Topology) Ports() []PortMapping { return slices.Clone(t.ports) }

// Addr returns the twin address (127.0.0.1:port) of port of a compose
// service: Addr("switchyard", 8080). It is "" if the topology has no such
// endpoint.
func (t *Topology) Addr(service string, port int) string {
	m := t.mapping(Endpoint{service, port})
	if m.HostPort == 0 {
		return ""
	}
	return m.Addr()
}

func (t *Topology) mapping(ep Endpoint) PortMapping {
	for _, m := range t.ports {
		if m.Endpoint == ep {
			return m
		}
	}
	return PortMapping{}
}

// WriteMapping prints the port mapping as a table.
func (t *Topology) WriteMapping(w io.Writer) error { return writeMapping(w, t.ports) }

// LogTail returns the last n bytes of a service's log.
func (t *Topology) LogTail(service string, n int64) string {
	s := t.byName[service]
	if s == nil {
		return ""
	}
	return tail(s.LogFile, n)
}
