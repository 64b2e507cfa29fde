package telemetry

import (
	"context"
	"log/slog"
	"time"
)

// logAccess writes the access log line of one request: one JSON object
// with the trace id (ours when tracing, else the client's traceparent's),
// the route, service and instance that served it, status and duration.
func (t *Telemetry) logAccess(st *reqState, status int, elapsed time.Duration) {
	traceID := ""
	switch {
	case st.smp != nil:
		traceID = st.smp.serverContext().TraceID().String()
	case st.tp.isSet(): // not sampled: the ids sent upstream
		traceID = st.tp.v[0][3:35]
	default: // tracing off: the client's trace, if any
		if sc := extractParent(st.r.Header); sc.IsValid() {
			traceID = sc.TraceID().String()
		}
	}
	instance := ""
	if st.up != nil {
		instance = st.up.ID
	}
	client, _ := splitHostPort(st.r.RemoteAddr)
	t.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("trace_id", traceID),
		slog.String("method", st.r.Method),
		slog.String("path", st.r.URL.Path),
		slog.String("route", st.route),
		slog.String("service", st.service),
		slog.String("instance", instance),
		slog.Int("attempts", int(st.attempts)),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("client", client),
	)
}
