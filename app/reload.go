package app

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// WatchConfig makes Run reload the configuration whenever the file at path
// changes. Call it before Run.
func (a *App) WatchConfig(path string) { a.configPath = path }

// ReloadFile reads the configuration file again and applies it (SIGHUP). An
// invalid file is rejected with a log line; the running configuration stays.
func (a *App) ReloadFile() error {
	next, err := config.Load(a.configPath)
	if err != nil {
		a.log.Error("configuration reload rejected; keeping the running configuration", "file", a.configPath, "error", err)
		return err
	}
	return a.Reload(next)
}

// Reload applies the reloadable part of next: services, routes and health
// settings. Changes take effect atomically per service and route table:
// health first, so new instances are probed before routes point at them.
// Other keys (listeners, timeouts, discovery, telemetry) need a restart;
// a change to them is logged and ignored.
func (a *App) Reload(next *config.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if next.Discovery.Provider != a.cfg.Discovery.Provider {
		err := fmt.Errorf("discovery.provider changed from %q to %q: restart to apply", a.cfg.Discovery.Provider, next.Discovery.Provider)
		a.log.Error("configuration reload rejected; keeping the running configuration", "error", err)
		return err
	}
	live := *a.live
	live.Backends, live.Services, live.Routes, live.LB = next.Backends, next.Services, next.Routes, next.LB
	health, fixed := reloadHealth(a.cfg.Health, next.Health)
	live.Health = health
	for _, k := range append(fixedKeysChanged(a.cfg, next), fixed...) {
		a.log.Warn("configuration key is not hot-reloadable; restart to apply", "key", k)
	}
	a.live = &live

	a.checker.SetDefaults(live.Health)
	if a.static != nil && a.cfg.Discovery.Provider == config.ProviderStatic {
		// Run's loop applies it through onSnapshot, health before routes.
		a.static.Set(discovery.FromConfig(&live))
	} else {
		a.gw.SetUpstreams(upstreams(withFileUpstreams(&live, a.last)))
		a.gw.SetServices(a.last, Balancing(&live))
		a.gw.SetRoutes(Routes(&live, a.last))
	}
	a.reloads.Add(1)
	a.log.Info("configuration reloaded", "services", len(live.Services), "routes", len(live.Routes))
	return nil
}

// Reloads counts the configuration reloads applied since start.
func (a *App) Reloads() int64 { return a.reloads.Load() }

// fixedKeysChanged lists the top-level sections that differ but are only
// read at start-up.
func fixedKeysChanged(cur, next *config.Config) []string {
	var out []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, key)
		}
	}
	check("listen", cur.Listen, next.Listen)
	check("admin", cur.Admin, next.Admin)
	check("discovery", cur.Discovery, next.Discovery)
	check("proxy", cur.Proxy, next.Proxy)
	check("server", cur.Server, next.Server)
	check("telemetry", cur.Telemetry, next.Telemetry)
	check("log", cur.Log, next.Log)
	check("shutdown_timeout", cur.ShutdownTimeout, next.ShutdownTimeout)
	return out
}

// reloadHealth returns the health settings a reload applies: next's, but
// for the keys read only at start, which keep their value from started
// and are named in fixed when next changes them. health.merge decides
// which instances the checker probes at all; passive.consecutive_failures
// is wired into the gateway's proxy at start. This is the one place that
// says so.
func reloadHealth(started, next config.Health) (live config.Health, fixed []string) {
	if next.Merge != started.Merge {
		fixed = append(fixed, "health.merge")
		next.Merge = started.Merge
	}
	if next.Passive.ConsecutiveFailures != started.Passive.ConsecutiveFailures {
		fixed = append(fixed, "health.passive.consecutive_failures")
		next.Passive.ConsecutiveFailures = started.Passive.ConsecutiveFailures
	}
	if next.MaxConcurrentProbes != started.MaxConcurrentProbes {
		fixed = append(fixed, "health.max_concurrent_probes")
		next.MaxConcurrentProbes = started.MaxConcurrentProbes
	}
	return next, fixed
}

// watchConfig reloads on changes to the config file until ctx is done. It
// watches the directory, since editors and ConfigMaps replace files by
// rename, and waits for writes to settle before reading.
func (a *App) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("cannot watch the configuration file; reload with SIGHUP", "error", err)
		return
	}
	defer w.Close()
	dir, name := filepath.Split(a.configPath)
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		a.log.Warn("cannot watch the configuration file; reload with SIGHUP", "error", err)
		return
	}
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) == name && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Warn("configuration watch", "error", err)
		case <-timer.C:
			_ = a.ReloadFile()
		}
	}
}
