// Command switchyard is an HTTP gateway that routes to services discovered
// in Consul or a static config, over the instances its own probes call
// healthy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/switchyard-gw/switchyard/app"
	"github.com/switchyard-gw/switchyard/config"
)

func main() {
	// Heap profiling is off unless admin.pprof turns it on (run). Otherwise
	// the runtime samples an allocation every 512 KiB for the life of the
	// process and keeps a bucket per distinct stack in a hash table whose
	// resident pages grow with them (~250 KiB after 12 s at 256
	// connections), for a profile only /debug/pprof serves. Package init
	// allocates ~0.7 MB in all, so doing this here rather than before every
	// other package's init costs a sample or two (4-8 KiB). Changing the
	// rate makes the runtime record one sample, so the table's 1.4 MB of
	// address space is still reserved (MemStats.BuckHashSys), with a few
	// pages resident; only GODEBUG=memprofilerate=0 at exec avoids it.
	memProfileRate := runtime.MemProfileRate
	runtime.MemProfileRate = 0
	os.Exit(run(memProfileRate))
}

// run starts the gateway; memProfileRate is the heap-profile sampling rate
// the process started with, restored when admin.pprof is on.
func run(memProfileRate int) int {
	configPath := flag.String("config", "", "config file (YAML); default $SWITCHYARD_CONFIG")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	healthcheck := flag.Bool("healthcheck", false, "exit 0 if the running gateway's /readyz answers 200 (for container healthchecks)")
	flag.Parse()

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard:", err)
		return 2
	}
	if cfg.Admin.Pprof {
		// The profile misses only what flags and config loading allocated.
		runtime.MemProfileRate = memProfileRate
	}
	if *check {
		fmt.Println("configuration ok")
		return 0
	}
	if *healthcheck {
		return probeReady(cfg.Admin.Listen)
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(cfg, log, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard:", err)
		return 1
	}
	if path := configFile(*configPath); path != "" {
		a.WatchConfig(path)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				_ = a.ReloadFile()
			}
		}()
	}
	if err := a.Run(ctx); err != nil {
		log.Error("stopped", "error", err)
		return 1
	}
	return 0
}

// probeReady asks the admin listener of a running gateway for /readyz.
func probeReady(adminListen string) int {
	host, port, _ := net.SplitHostPort(adminListen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard: healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "switchyard: healthcheck: /readyz answered", resp.Status)
		return 1
	}
	return 0
}

// configFile is the file Load read, if any.
func configFile(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv(config.EnvPrefix + "_CONFIG")
}

func newLogger(c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
