package telemetry

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// logAccess writes the access log line of one request: one JSON object
// with the trace id (ours when tracing, else the client's traceparent's),
// the route, service and instance that served it, status and duration.
func (t *Telemetry) logAccess(st *reqState, status int, elapsed time.Duration) {
	sc := st.sc // not sampled: the ids sent upstream
	if st.span != nil {
		sc = st.span.SpanContext()
	} else if !sc.IsValid() && len(st.r.Header["Traceparent"]) > 0 {
		sc = trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), headerCarrier(st.r.Header)))
	}
	traceID := ""
	if sc.IsValid() {
		traceID = sc.TraceID().String()
	}
	client, _ := splitHostPort(st.r.RemoteAddr)
	t.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("trace_id", traceID),
		slog.String("method", st.r.Method),
		slog.String("path", st.r.URL.Path),
		slog.String("route", st.route),
		slog.String("service", st.service),
		slog.String("instance", st.instance),
		slog.Int("attempts", st.attempts),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client", client),
	)
}
