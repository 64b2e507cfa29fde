// Package app wires discovery, health and the gateway together and runs the
// listeners. cmd/switchyard only parses flags and calls Run.
package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-gw/switchyard/admin"
	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/h1"
	"github.com/switchyard-gw/switchyard/health"
)

// App is one running gateway.
type App struct {
	cfg     *config.Config // as started: listeners, timeouts, providers
	log     *slog.Logger
	source  discovery.Source
	static  *discovery.Static // the static source, for reloads; nil with Consul
	checker *health.Checker
	gw      *gateway.Gateway

	obs *observability
	tls *tls.Config // nil: plain HTTP

	proxyLn, adminLn net.Listener

	// mu orders snapshot applications and reloads; live holds the
	// reloadable part of the configuration (services, routes, health).
	mu         sync.Mutex
	live       *config.Config
	last       discovery.Snapshot
	configPath string // watched for changes when set
	reloads    atomic.Int64
}

// New builds the components for cfg and binds both listeners, so that a
// port conflict fails before anything runs. source nil builds the one that
// cfg selects.
func New(cfg *config.Config, log *slog.Logger, source discovery.Source) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	if source == nil {
		var err error
		if source, err = NewSource(cfg, log); err != nil {
			return nil, err
		}
	}
	obs, err := newObservability(cfg, log)
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Options{
		Proxy:       cfg.Proxy,
		Logger:      log,
		RetryAfter:  cfg.Health.Interval,
		Hooks:       obs.gatewayHooks,
		EjectAfter:  cfg.Health.Passive.ConsecutiveFailures,
		BodyTimeout: cfg.Server.ReadTimeout,
	})
	if err != nil {
		obs.shutdown(context.Background())
		return nil, err
	}
	checker := health.New(health.Options{
		Defaults:      cfg.Health,
		AcceptWarning: cfg.Discovery.Consul.AcceptWarning,
		Setter:        gw,
		Logger:        log,
		OnProbe:       obs.onProbe,
		OnTransition:  obs.onTransition,
	})
	gw.SetEjector(checker)
	a := &App{cfg: cfg, live: cfg, log: log, source: source, checker: checker, gw: gw, obs: obs}
	a.static, _ = source.(*discovery.Static) // before telemetry wraps the source
	if err := obs.bind(a); err != nil {
		obs.shutdown(context.Background())
		return nil, err
	}
	if cfg.Server.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile)
		if err != nil {
			obs.shutdown(context.Background())
			return nil, fmt.Errorf("server.tls_cert_file %q: %w", cfg.Server.TLSCertFile, err)
		}
		a.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if a.proxyLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		obs.shutdown(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	if a.tls == nil {
		// Unambiguous HTTP/1 framing on cleartext connections. Over TLS
		// net/http must see the *tls.Conn itself (for HTTP/2 by ALPN), so
		// its own parser is the only check there.
		a.proxyLn = h1.StrictListener(a.proxyLn, h1.StrictOptions{MaxHeaderBytes: cfg.Server.MaxHeaderBytes, H2C: cfg.Server.H2C})
	}
	if a.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		a.proxyLn.Close()
		obs.shutdown(context.Background())
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	return a, nil
}

// NewSource returns the discovery source cfg selects.
func NewSource(cfg *config.Config, log *slog.Logger) (discovery.Source, error) {
	switch cfg.Discovery.Provider {
	case config.ProviderStatic:
		return discovery.NewStatic(discovery.FromConfig(cfg)), nil
	case config.ProviderConsul:
		return newConsulSource(cfg, log)
	default:
		return nil, fmt.Errorf("discovery.provider %q is not supported", cfg.Discovery.Provider)
	}
}

// ProxyAddr and AdminAddr return the bound addresses (useful with port 0).
func (a *App) ProxyAddr() string { return a.proxyLn.Addr().String() }
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Gateway and Checker expose the components, for tests and telemetry wiring.
func (a *App) Gateway() *gateway.Gateway { return a.gw }
func (a *App) Checker() *health.Checker  { return a.checker }

// onSnapshot applies one discovery snapshot: health first, so pools exist
// (possibly empty) before routes point at them.
func (a *App) onSnapshot(snap discovery.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = snap
	snap = withFileUpstreams(a.live, snap)
	a.gw.SetServices(snap, Balancing(a.live)) // before health builds pools
	a.checker.Update(snap)
	a.gw.SetUpstreams(upstreams(snap))
	a.gw.SetRoutes(Routes(a.live, snap))
}

// Routes merges configured routes with the routes discovery asks for.
// Configured routes come first and win on the same host and prefix.
func Routes(cfg *config.Config, snap discovery.Snapshot) []config.Route {
	out := append([]config.Route(nil), cfg.Routes...)
	for _, s := range snap.Services {
		out = append(out, s.Routes...)
	}
	return out
}

// Ready reports whether the gateway should receive traffic.
func (a *App) Ready() bool {
	return a.checker.Ready() && a.gw.HasHealthyRoute()
}

// Run serves until ctx is done, then drains in-flight requests for at most
// shutdown_timeout. It returns the first error of a listener or of
// discovery, after the same drain; nil after ctx ended.
func (a *App) Run(ctx context.Context) error {
	proxy, serveProxy := a.proxyServer()
	adminSrv := a.adminServer()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	a.startBackground(runCtx, &wg, errc)
	serve := func(run func() error) {
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}
	go serve(serveProxy)
	go serve(func() error { return adminSrv.Serve(a.adminLn) })
	a.log.Info("switchyard listening", "proxy", a.ProxyAddr(), "admin", a.AdminAddr(), "discovery", a.cfg.Discovery.Provider)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	a.shutdown(proxy, adminSrv, cancel, &wg)
	return err
}

// drainer is the proxy server as Run stops it: net/http's or the fast path.
type drainer interface {
	Shutdown(context.Context) error
	Close() error
}

// proxyServer builds the client-facing server and the function that serves
// it on the proxy listener. Cleartext connections go through the gateway's
// HTTP/1 fast path, which hands anything unusual to net/http's server; TLS
// (with HTTP/2 by ALPN) is net/http's alone.
func (a *App) proxyServer() (drainer, func() error) {
	srv := &http.Server{
		Handler:           a.gw,
		ReadHeaderTimeout: a.cfg.Server.ReadHeaderTimeout,
		// server.read_timeout is enforced per request body by the gateway,
		// not as http.Server.ReadTimeout, which would also cut streams.
		WriteTimeout:   a.cfg.Server.WriteTimeout,
		IdleTimeout:    a.cfg.Server.IdleTimeout,
		MaxHeaderBytes: a.cfg.Server.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		TLSConfig:      a.tls,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(a.cfg.Server.TLSCertFile != "")
	srv.Protocols.SetUnencryptedHTTP2(a.cfg.Server.H2C)
	if a.tls != nil {
		return srv, func() error { return srv.ServeTLS(a.proxyLn, "", "") } // certificate loaded by New
	}
	fast := &h1.Server{Handler: a.gw, Fallback: srv, Logger: a.log}
	return fast, func() error { return fast.Serve(a.proxyLn) }
}

// adminServer builds the operator-facing server. Its timeouts are fixed:
// the admin listener serves small answers to operators and probes.
func (a *App) adminServer() *http.Server {
	return &http.Server{
		Handler: admin.New(admin.Options{
			Ready:         a.Ready,
			Services:      a.checker.Services,
			Summaries:     a.checker.Summaries,
			ServicesNamed: a.checker.ServicesNamed,
			Routes:        a.gw.Routes,
			Balance:       a.gw.Balance,
			Discovery:     a.source.Status,
			Extra:         a.adminExtra(),
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// startBackground runs the prober, discovery and, with a config file, its
// watcher until ctx ends; each is counted in wg. A discovery failure other
// than the cancellation is sent on errc.
func (a *App) startBackground(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	wg.Add(2)
	go func() { defer wg.Done(); a.checker.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := a.source.Run(ctx, a.onSnapshot); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("discovery: %w", err)
		}
	}()
	if a.configPath != "" {
		wg.Add(1)
		go func() { defer wg.Done(); a.watchConfig(ctx) }()
	}
}

// shutdown drains the proxy for at most shutdown_timeout (then closes it),
// closes the admin server, stops the background work (cancel, then waits
// for wg), closes idle upstream connections and flushes telemetry within
// the same budget.
func (a *App) shutdown(proxy drainer, adminSrv *http.Server, cancel context.CancelFunc, wg *sync.WaitGroup) {
	a.log.Info("shutting down", "drain_timeout", a.cfg.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer scancel()
	if e := proxy.Shutdown(sctx); e != nil {
		a.log.Warn("drain incomplete", "error", e)
		proxy.Close()
	}
	adminSrv.Close()
	cancel()
	wg.Wait()
	a.gw.CloseIdleConnections()
	if e := a.obs.shutdown(sctx); e != nil {
		a.log.Warn("telemetry shutdown", "error", e)
	}
}

// adminExtra returns the admin handlers beyond the core ones: telemetry's
// and a runtime summary (goroutines, heap) for soak tests and operators.
func (a *App) adminExtra() map[string]http.Handler {
	extra := map[string]http.Handler{
		"GET /api/v1/runtime": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"goroutines": runtime.NumGoroutine(),
				"heap_bytes": ms.HeapAlloc,
				"reloads":    a.reloads.Load(),
			})
		}),
	}
	if a.cfg.Admin.Pprof {
		extra["/debug/pprof/"] = http.HandlerFunc(pprof.Index)
		extra["/debug/pprof/cmdline"] = http.HandlerFunc(pprof.Cmdline)
		extra["/debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
		extra["/debug/pprof/symbol"] = http.HandlerFunc(pprof.Symbol)
		extra["/debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
	}
	for k, v := range a.obs.adminHandlers {
		extra[k] = v
	}
	return extra
}
