// Package jaegerconf writes the Jaeger v2 all-in-one configuration that the
// tests and the process twin of the compose topology run Jaeger with.
package jaegerconf

import "fmt"

// Addrs are the host:port of every listener Jaeger opens. All must be set,
// so that no listener falls back to a default port someone else may hold.
type Addrs struct {
	Health, QueryHTTP, QueryGRPC, OTLPGRPC, OTLPHTTP string
}

// Config returns the configuration: OTLP in (gRPC and HTTP), in-memory
// storage, the query API and UI, and a health check. Jaeger's own metrics
// endpoint and self-tracing are off (it would trace to localhost:4317).
// logLevel is Jaeger's (warn, info, ...).
func Config(a Addrs, logLevel string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: %s
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %s
  jaeger_query:
    enable_tracing: false
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, logLevel, a.Health, a.QueryHTTP, a.QueryGRPC, a.OTLPGRPC, a.OTLPHTTP)
}
