// Command demo-backend is a small HTTP backend for Switchyard demos, tests
// and the docker-compose setup. It answers with its name, echoes requests,
// streams server-sent events, answers slowly on demand, exposes a health
// status that can be flipped at runtime, and can register itself in Consul.
//
// Every flag can also be given as an environment variable DEMO_<FLAG>, upper
// case with dashes as underscores (DEMO_LISTEN, DEMO_HEALTH_STATUS, ...); a
// flag on the command line wins. See newHandler for the routes.
//
//	demo-backend --listen 0.0.0.0:9001 --name blue --consul-register
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const (
	// envPrefix prefixes the environment variable read for a flag not given
	// on the command line.
	envPrefix = "DEMO_"

	// shutdownTimeout bounds how long in-flight requests may finish after
	// SIGINT/SIGTERM before their connections are closed.
	shutdownTimeout = 5 * time.Second
	// deregisterTimeout bounds deregistration, so an unreachable Consul
	// cannot stall shutdown.
	deregisterTimeout = 2 * time.Second
)

// config is the parsed command line.
type config struct {
	listen       string
	name         string
	delay        time.Duration
	healthStatus int

	consulRegister bool
	consulAddr     string
	service        string
	id             string
	advertise      string
	tags           string
	checkInterval  time.Duration
}

// parseConfig parses args (without the program name). A flag not given in
// args takes its value from the environment variable envName(flag) when
// getenv returns a non-empty value for it. Errors from the flag syntax are
// also printed, with the usage, to stderr; -h yields flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("demo-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9001", "`host:port` to listen on")
	fs.StringVar(&c.name, "name", "backend", "backend name, answered by / and sent as X-Backend")
	fs.DurationVar(&c.delay, "delay", 0, "artificial delay before answering / and /echo")
	fs.IntVar(&c.healthStatus, "health-status", http.StatusOK, "initial /health status `code` (100-599)")
	fs.BoolVar(&c.consulRegister, "consul-register", false, "register this backend in Consul on start")
	fs.StringVar(&c.consulAddr, "consul-addr", "", "Consul agent `address`, overriding CONSUL_HTTP_ADDR")
	fs.StringVar(&c.service, "service", "demo", "Consul service `name`")
	fs.StringVar(&c.id, "id", "", "Consul service ID (default \"<service>-<name>\")")
	fs.StringVar(&c.advertise, "advertise", "", "`host:port` Consul and the gateway use to reach this backend (default: from --listen, an unspecified host replaced by the hostname)")
	fs.StringVar(&c.tags, "tags", "switchyard.enable=true", "comma-separated Consul service tags")
	fs.DurationVar(&c.checkInterval, "check-interval", 2*time.Second, "Consul health check interval")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo-backend [flags]\n\nEach flag may also be set as %s<FLAG> (e.g. %s), used when the flag is not given.\n\n",
			envPrefix, envName("health-status"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		key := envName(f.Name)
		if v := getenv(key); v != "" && !given[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}

	if c.name == "" {
		return config{}, errors.New("--name must not be empty")
	}
	if c.delay < 0 {
		return config{}, fmt.Errorf("--delay %s must not be negative", c.delay)
	}
	if !validStatus(c.healthStatus) {
		return config{}, fmt.Errorf("--health-status %d: want an HTTP status code between 100 and 599", c.healthStatus)
	}
	if c.consulRegister {
		if c.service == "" {
			return config{}, errors.New("--service must not be empty")
		}
		if c.checkInterval <= 0 {
			return config{}, fmt.Errorf("--check-interval %s must be positive", c.checkInterval)
		}
	}
	if c.id == "" {
		c.id = c.service + "-" + c.name
	}
	return c, nil
}

// envName returns the environment variable read for flag name:
// "health-status" → "DEMO_HEALTH_STATUS".
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-backend:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("demo-backend failed", "err", err)
		os.Exit(1)
	}
}

// run serves cfg until ctx is done, then shuts down gracefully: it
// deregisters from Consul (if registered) so the gateway stops routing
// here, then lets in-flight requests finish for up to shutdownTimeout.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx) // stops registration if Serve fails
	defer cancel()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: newHandler(cfg.name, cfg.delay, cfg.healthStatus),
		// Bounds how long a client may take to send its headers, so slow
		// or idle clients (slowloris) cannot pin connections.
		ReadHeaderTimeout: 5 * time.Second,
		// Bounds reading the whole request, including the /echo body.
		ReadTimeout: 30 * time.Second,
		// WriteTimeout is deliberately left at 0 (none): /slow, /sse and
		// --delay keep responses open for as long as the caller asks, and a
		// write deadline would cut them off. Every wait instead ends when
		// the client goes away (request context cancellation).

		// Bounds how long an idle keep-alive connection is kept open.
		IdleTimeout: 60 * time.Second,
		// Demo requests carry small headers; 64 KiB is plenty.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "name", cfg.name)

	var reg *registrar
	registered := make(chan bool, 1)
	if cfg.consulRegister {
		if reg, err = setupRegistrar(cfg, ln.Addr().(*net.TCPAddr).Port, log); err != nil {
			srv.Close()
			return err
		}
		go func() { registered <- reg.register(ctx) }()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "cause", context.Cause(ctx))

	// register returns promptly once ctx is done.
	if reg != nil && <-registered {
		dctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
		if err := reg.deregister(dctx); err != nil {
			log.Warn("consul deregistration failed", "err", err)
		}
		cancel()
	}

	sctx, cancelShutdown := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelShutdown()
	if err := srv.Shutdown(sctx); err != nil {
		// Long /slow or /sse requests are still running: cut them off.
		log.Warn("graceful shutdown incomplete, closing remaining connections", "err", err)
		srv.Close()
	}
	log.Info("stopped")
	return nil
}

// setupRegistrar prepares Consul registration as configured by cfg, for a
// server bound to port.
func setupRegistrar(cfg config, port int, log *slog.Logger) (*registrar, error) {
	advertise := cfg.advertise
	if advertise == "" {
		var err error
		if advertise, err = deriveAdvertise(cfg.listen, port, os.Hostname); err != nil {
			return nil, err
		}
	}
	svc, err := serviceRegistration(cfg.service, cfg.id, advertise, cfg.tags, cfg.checkInterval)
	if err != nil {
		return nil, err
	}
	client, err := consulClient(cfg.consulAddr)
	if err != nil {
		return nil, err
	}
	return newRegistrar(client, svc, log), nil
}
