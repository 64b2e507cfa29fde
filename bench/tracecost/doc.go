// Package tracecost measures what tracing costs the gateway in CPU:
//
//   - BenchmarkTraceCost: requests per CPU-second with telemetry disabled,
//     with tracing off (metrics only, the default), and with tracing at
//     1% and 100% to a live Jaeger, side by side in one run.
//   - BenchmarkRecordedRequest: one recorded request from end to end in
//     process (hooks, SDK spans, batch processor, exporter), with the
//     SDK's OTLP exporter and the gateway's own (telemetry.span_exporter).
//   - BenchmarkSpanPairFloor: the SDK's spans and exporter alone, per
//     server+client span pair.
//
// instructions.sh counts user instructions per op of any of them with
// callgrind, a figure that the load of a shared machine does not change.
package tracecost
