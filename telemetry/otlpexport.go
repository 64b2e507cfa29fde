package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard-gw/switchyard/config"
)

// Span exporters for telemetry.span_exporter.
const (
	// SpanExporterDirect writes OTLP itself (otlpenc.go): no proto
	// structs per span.
	SpanExporterDirect = "direct"
	// SpanExporterSDK is the OpenTelemetry Go SDK's OTLP exporter.
	SpanExporterSDK = "sdk"
)

// directExporter is an sdktrace.SpanExporter that encodes each batch with
// otlpEncoder and sends it over OTLP http/protobuf or gRPC. It reads the
// standard OTEL_EXPORTER_OTLP_[TRACES_]{HEADERS,COMPRESSION,TIMEOUT,
// CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY} variables, as the SDK's
// exporter does. A batch that the collector answers with a retryable
// status (HTTP 429, 502, 503, 504; gRPC UNAVAILABLE, RESOURCE_EXHAUSTED,
// ABORTED) is sent again, at most maxTries times in all, within the
// export's deadline.
type directExporter struct {
	mu      sync.Mutex // one batch at a time: the encoder's buffers are shared
	enc     otlpEncoder
	gz      *gzip.Writer // nil: no compression here (gRPC compresses itself)
	gzBuf   bytes.Buffer
	timeout time.Duration
	// send sends one encoded request; retry says the failure may pass,
	// after hint if the collector gave one.
	send   func(ctx context.Context, body []byte) (retry bool, hint time.Duration, err error)
	close  func()
	closed bool
}

const (
	maxTries       = 3
	maxRetryDelay  = 5 * time.Second
	defaultTimeout = 10 * time.Second
	// otlpTraceMethod is the gRPC method of trace export.
	otlpTraceMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
)

// directConfig is what the direct exporter reads from the environment.
type directConfig struct {
	url     *url.URL // for http/protobuf, the full URL to POST to
	headers map[string]string
	gzip    bool
	timeout time.Duration
	tls     *tls.Config // nil for http:// endpoints
}

// newDirectExporter builds the direct exporter for the traces endpoint in
// s. client, if not nil, is the HTTP client of http/protobuf export.
func newDirectExporter(s settings, getenv func(string) string, client *http.Client) (*directExporter, error) {
	c, err := directSettings(s, getenv)
	if err != nil {
		return nil, err
	}
	e := &directExporter{timeout: c.timeout}
	if s.tracesProtocol == ProtocolHTTP {
		if c.gzip {
			e.gz = gzip.NewWriter(io.Discard)
		}
		if client == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = c.tls
			client = &http.Client{Transport: tr}
		}
		e.send, e.close = httpSender(c, client), client.CloseIdleConnections
		return e, nil
	}
	creds := insecure.NewCredentials()
	if c.tls != nil {
		creds = credentials.NewTLS(c.tls)
	}
	conn, err := grpc.NewClient(c.url.Host, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("traces endpoint %q: %w", s.tracesEndpoint, err)
	}
	e.send, e.close = grpcSender(c, conn), func() { _ = conn.Close() }
	return e, nil
}

// directSettings reads the endpoint of s and the exporter's variables,
// the traces-specific ones first. Errors name the variable and value.
func directSettings(s settings, getenv func(string) string) (directConfig, error) {
	var c directConfig
	env := func(name string) (string, string) {
		k := "OTEL_EXPORTER_OTLP_TRACES_" + name
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return k, v
		}
		k = "OTEL_EXPORTER_OTLP_" + name
		return k, strings.TrimSpace(getenv(k))
	}
	u, err := url.Parse(s.tracesEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("traces endpoint: invalid value %q: want a URL such as http://localhost:4317", s.tracesEndpoint)
	}
	if s.tracesProtocol == ProtocolHTTP && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		// A base URL, as the SDK's exporter takes it.
		u = u.JoinPath("v1", "traces")
	}
	if s.tracesProtocol == ProtocolGRPC && u.Port() == "" {
		u.Host += ":4317"
	}
	c.url = u

	if k, v := env("HEADERS"); v != "" {
		c.headers = map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(kv, "=")
			name = strings.TrimSpace(name)
			if !ok || name == "" {
				return c, fmt.Errorf("%s: invalid value %q: want key=value pairs separated by commas", k, v)
			}
			if val, err = url.PathUnescape(strings.TrimSpace(val)); err != nil {
				return c, fmt.Errorf("%s: invalid value %q: %w", k, v, err)
			}
			c.headers[name] = val
		}
	}
	switch k, v := env("COMPRESSION"); v {
	case "", "none":
	case "gzip":
		c.gzip = true
	default:
		return c, fmt.Errorf("%s: invalid value %q: want gzip or none", k, v)
	}
	c.timeout = defaultTimeout
	if k, v := env("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return c, fmt.Errorf("%s: invalid value %q: want a positive number of milliseconds", k, v)
		}
		c.timeout = time.Duration(ms) * time.Millisecond
	}
	if u.Scheme == "https" {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if k, v := env("CERTIFICATE"); v != "" {
			pem, err := os.ReadFile(v)
			if err != nil {
				return c, fmt.Errorf("%s: invalid value %q: %w", k, v, err)
			}
			c.tls.RootCAs = x509.NewCertPool()
			if !c.tls.RootCAs.AppendCertsFromPEM(pem) {
				return c, fmt.Errorf("%s: invalid value %q: no PEM certificate in it", k, v)
			}
		}
		kc, cert := env("CLIENT_CERTIFICATE")
		kk, key := env("CLIENT_KEY")
		if (cert == "") != (key == "") {
			return c, fmt.Errorf("%s and %s: set both or neither (got %q and %q)", kc, kk, cert, key)
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return c, fmt.Errorf("%s: invalid value %q: %w", kc, cert, err)
			}
			c.tls.Certificates = []tls.Certificate{pair}
		}
	}
	return c, nil
}

// ExportSpans encodes spans and sends them (sdktrace.SpanExporter).
func (e *directExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	return e.export(ctx, func(enc *otlpEncoder) []byte { return enc.encode(spans) })
}

// exportSpans sends spans, encoded Span messages of resource res and
// scope scope (see otlpEncoder.encodeSpans).
func (e *directExporter) exportSpans(ctx context.Context, res *resource.Resource, scope instrumentation.Scope, spans []byte) error {
	if len(spans) == 0 {
		return nil
	}
	return e.export(ctx, func(enc *otlpEncoder) []byte { return enc.encodeSpans(res, scope, spans) })
}

// export sends the request that encode writes, compressed if configured,
// trying again while the failure is retryable.
func (e *directExporter) export(ctx context.Context, encode func(*otlpEncoder) []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("otlp exporter: shut down")
	}
	body := encode(&e.enc)
	if e.gz != nil {
		e.gzBuf.Reset()
		e.gz.Reset(&e.gzBuf)
		_, _ = e.gz.Write(body) // writes to a bytes.Buffer do not fail
		_ = e.gz.Close()
		body = e.gzBuf.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	for try := 1; ; try++ {
		retry, hint, err := e.send(ctx, body)
		if err != nil {
			// The transport may still hold the body of a failed request
			// (a write cut short): the next batch gets buffers of its own.
			e.enc.buf, e.gzBuf = nil, bytes.Buffer{}
		}
		if err == nil || !retry || try == maxTries {
			return err
		}
		t := time.NewTimer(retryAfter(try, hint))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (then %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// Shutdown closes the exporter's connections (sdktrace.SpanExporter).
func (e *directExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		e.close()
	}
	return nil
}

// retryAfter is how long to wait before try n+1 of a retryable failure,
// hint (from Retry-After) if any, capped.
func retryAfter(try int, hint time.Duration) time.Duration {
	if hint > 0 {
		return min(hint, maxRetryDelay)
	}
	return min(time.Duration(try)*time.Second, maxRetryDelay)
}

// httpSender posts batches to c.url.
func httpSender(c directConfig, client *http.Client) func(context.Context, []byte) (bool, time.Duration, error) {
	target := c.url.String()
	header := http.Header{"Content-Type": {"application/x-protobuf"}, "User-Agent": {"switchyard"}}
	if c.gzip {
		header.Set("Content-Encoding", "gzip")
	}
	for k, v := range c.headers {
		header.Set(k, v)
	}
	return func(ctx context.Context, body []byte) (bool, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return false, 0, err
		}
		req.Header = header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return ctx.Err() == nil, 0, fmt.Errorf("otlp http: %w", err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return false, 0, nil
		}
		err = fmt.Errorf("otlp http: %s%s", resp.Status, rpcStatusMessage(msg))
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return true, time.Duration(secs) * time.Second, err
		}
		return false, 0, err
	}
}

// rpcStatusMessage returns ": <message>" from a google.rpc.Status body (what
// an OTLP/HTTP collector answers a failed request with), or "".
func rpcStatusMessage(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ""
			}
			return ": " + validUTF8(string(v))
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}

// grpcSender calls TraceService/Export on conn with the encoded request.
func grpcSender(c directConfig, conn *grpc.ClientConn) func(context.Context, []byte) (bool, time.Duration, error) {
	md := metadata.New(c.headers)
	opts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}
	if c.gzip {
		opts = append(opts, grpc.UseCompressor(grpcgzip.Name))
	}
	return func(ctx context.Context, body []byte) (bool, time.Duration, error) {
		if len(md) > 0 {
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		var resp []byte
		err := conn.Invoke(ctx, otlpTraceMethod, body, &resp, opts...)
		if err == nil {
			return false, 0, nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
			return ctx.Err() == nil, 0, fmt.Errorf("otlp grpc: %w", err)
		}
		return false, 0, fmt.Errorf("otlp grpc: %w", err)
	}
}

// rawCodec passes encoded messages through gRPC as they are: a request
// is a []byte, a response is read into a *[]byte. Its name is "proto", the
// content subtype that collectors expect.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = data.Materialize()
	return nil
}

// NewSpanExporter returns the span exporter that cfg and the OTEL_*
// variables (read with getenv; nil: os.Getenv) select, as New builds it
// (benchmarks, tools). client, if not nil, is the HTTP client of the
// direct exporter's http/protobuf export.
func NewSpanExporter(ctx context.Context, cfg config.Telemetry, getenv func(string) string, client *http.Client) (sdktrace.SpanExporter, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s, err := resolve(cfg, getenv)
	if err != nil {
		return nil, err
	}
	if s.tracesEndpoint == "" {
		return nil, errors.New("telemetry.endpoint: no traces endpoint set")
	}
	return newSpanExporter(ctx, s, Options{Config: cfg, Getenv: getenv, ExportClient: client})
}
