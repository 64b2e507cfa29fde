// Command rssfloor is the memory floor that Switchyard's required
// dependencies impose: it links what the gateway must link (the Consul API
// client, Viper, the OpenTelemetry trace and metric SDKs with the OTLP
// gRPC and HTTP exporters, the Prometheus exporter with client_golang),
// does at start what the gateway does with the benchmark's config (read a
// YAML config through Viper, set up the meter provider with a Prometheus
// exporter, Go and process collectors on a private registry), and serves
// "ok" with net/http. It proxies nothing, probes nothing and routes
// nothing, so its idle RSS is what a gateway with these dependencies
// cannot go below. measure.sh compares it with the gateway and with a
// plain net/http server (./hello).
//
//	rssfloor -listen 127.0.0.1:8080 [-otlp 127.0.0.1:4317]
//
// Without -otlp the OTLP exporters are linked but not constructed, as in
// the gateway without telemetry.endpoint; with it all four are constructed
// (no connection is made until something is exported, and nothing is).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"
	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/viper"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// configYAML is read through Viper as the gateway reads its file, so the
// YAML decoder and mapstructure run as they do there.
const configYAML = `
listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:9901
services:
  - name: bench
    instances:
      - address: 127.0.0.1:9001
`

type floorConfig struct {
	Listen string `mapstructure:"listen"`
	Admin  struct {
		Listen string `mapstructure:"listen"`
	} `mapstructure:"admin"`
	Services []struct {
		Name      string `mapstructure:"name"`
		Instances []struct {
			Address string `mapstructure:"address"`
		} `mapstructure:"instances"`
	} `mapstructure:"services"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	otlp := flag.String("otlp", "", "construct the four OTLP exporters for this host:port (empty: link them only)")
	flag.Parse()
	if err := run(*listen, *otlp); err != nil {
		fmt.Fprintln(os.Stderr, "rssfloor:", err)
		os.Exit(1)
	}
}

func run(listen, otlp string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := loadConfig(); err != nil {
		return err
	}
	// The gateway builds a Consul client only with the consul provider; it
	// makes no request until asked, so building one here costs nothing but
	// keeps the package linked.
	cc, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		return fmt.Errorf("consul client: %w", err)
	}
	_ = cc.Health()

	reg := promclient.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mp, tp, err := newProviders(ctx, reg, otlp)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
		_ = mp.Shutdown(sctx)
	}()
	requests, err := mp.Meter("rssfloor").Int64Counter("rssfloor.requests")
	if err != nil {
		return fmt.Errorf("counter: %w", err)
	}
	// The gateway starts spans only with an exporter; the tracer is made
	// either way, as there.
	_ = tp.Tracer("rssfloor")
	return serve(ctx, listen, reg, requests)
}

// loadConfig reads and decodes configYAML with viper, as the gateway
// reads its configuration.
func loadConfig() error {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("RSSFLOOR")
	v.AutomaticEnv()
	if err := v.ReadConfig(bytes.NewReader([]byte(configYAML))); err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var cfg floorConfig
	if err := v.UnmarshalExact(&cfg); err != nil {
		return fmt.Errorf("decoding config: %w", err)
	}
	return nil
}

// newProviders builds the meter provider (Prometheus into reg, plus the
// OTLP exporters when otlp is set) and the tracer provider (batching to
// the OTLP exporters when otlp is set). The caller shuts both down.
func newProviders(ctx context.Context, reg *promclient.Registry, otlp string) (*sdkmetric.MeterProvider, *sdktrace.TracerProvider, error) {
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithReader(prom)}
	tpOpts := []sdktrace.TracerProviderOption{}
	if otlp != "" {
		exps, err := newExporters(ctx, otlp)
		if err != nil {
			return nil, nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exps.grpcSpans), sdktrace.WithBatcher(exps.httpSpans))
		mpOpts = append(mpOpts,
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exps.grpcMetrics, sdkmetric.WithInterval(time.Hour))),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exps.httpMetrics, sdkmetric.WithInterval(time.Hour))))
	}
	return sdkmetric.NewMeterProvider(mpOpts...), sdktrace.NewTracerProvider(tpOpts...), nil
}

// serve answers "ok" on listen, counting requests, and /metrics from reg,
// until ctx ends.
func serve(ctx context.Context, listen string, reg *promclient.Registry, requests metric.Int64Counter) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(r.Context(), 1)
		w.Write([]byte("ok\n"))
	})
	srv := &http.Server{
		Addr:    listen,
		Handler: mux,
		// Local measurement peers only; the timeouts just keep a stuck
		// client from holding a connection forever.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type exporters struct {
	grpcSpans, httpSpans     sdktrace.SpanExporter
	grpcMetrics, httpMetrics sdkmetric.Exporter
}

// newExporters builds the OTLP exporters the gateway can choose between.
// None of them connects before its first export.
func newExporters(ctx context.Context, endpoint string) (exporters, error) {
	var e exporters
	var err error
	if e.grpcSpans, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()); err != nil {
		return e, fmt.Errorf("otlptracegrpc: %w", err)
	}
	if e.httpSpans, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure()); err != nil {
		return e, fmt.Errorf("otlptracehttp: %w", err)
	}
	if e.grpcMetrics, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(endpoint), otlpmetricgrpc.WithInsecure()); err != nil {
		return e, fmt.Errorf("otlpmetricgrpc: %w", err)
	}
	if e.httpMetrics, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(endpoint), otlpmetrichttp.WithInsecure()); err != nil {
		return e, fmt.Errorf("otlpmetrichttp: %w", err)
	}
	return e, nil
}
