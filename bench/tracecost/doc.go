// Package tracecost holds BenchmarkTraceCost, which measures what tracing
// costs the gateway in CPU: requests per CPU-second with telemetry
// disabled, with tracing off (metrics only, the default), and with tracing
// at 1% and 100% to a live Jaeger, side by side in one run.
package tracecost
