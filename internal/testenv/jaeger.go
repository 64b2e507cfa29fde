package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/internal/jaegerconf"
)

// Jaeger is a real Jaeger (v2, all-in-one) with in-memory storage, OTLP
// receivers and the query HTTP API, each on a free 127.0.0.1 port.
type Jaeger struct {
	// OTLPGRPC and OTLPHTTP are receiver URLs for OTEL_EXPORTER_OTLP_ENDPOINT
	// (http scheme: no TLS).
	OTLPGRPC string
	OTLPHTTP string
	// QueryURL is the base of the query HTTP API (/api/traces, ...).
	QueryURL string
	Proc     *Process
}

// StartJaeger starts Jaeger and waits until it is healthy and its query API
// and OTLP receivers answer. It is killed by PID at cleanup. A port taken
// between choosing and binding it makes Jaeger exit; then it is started
// again on other ports.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin := Tool(t, "jaeger")
	var lastErr error
	for try := 0; try < 3; try++ {
		j, err := startJaeger(t, bin, try)
		if err == nil {
			return j
		}
		lastErr = err
		t.Logf("jaeger: %v; retrying on other ports", err)
	}
	t.Fatalf("starting jaeger: %v", lastErr)
	return nil
}

func startJaeger(t testing.TB, bin string, try int) (*Jaeger, error) {
	health, qhttp, qgrpc, ogrpc, ohttp := FreePort(t), FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	cfg := filepath.Join(t.TempDir(), fmt.Sprintf("jaeger-%d.yaml", try))
	if err := os.WriteFile(cfg, []byte(jaegerconf.Config(jaegerconf.Addrs{
		Health:    fmt.Sprintf("127.0.0.1:%d", health),
		QueryHTTP: fmt.Sprintf("127.0.0.1:%d", qhttp),
		QueryGRPC: fmt.Sprintf("127.0.0.1:%d", qgrpc),
		OTLPGRPC:  fmt.Sprintf("127.0.0.1:%d", ogrpc),
		OTLPHTTP:  fmt.Sprintf("127.0.0.1:%d", ohttp),
	}, "warn")), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, nil, bin, "--config", "file:"+cfg)
	j := &Jaeger{
		OTLPGRPC: fmt.Sprintf("http://127.0.0.1:%d", ogrpc),
		OTLPHTTP: fmt.Sprintf("http://127.0.0.1:%d", ohttp),
		QueryURL: fmt.Sprintf("http://127.0.0.1:%d", qhttp),
		Proc:     p,
	}
	client := &http.Client{Timeout: time.Second}
	ready := func() bool {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/status", health))
		if err != nil {
			return false
		}
		var st struct {
			Healthy bool `json:"healthy"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !st.Healthy {
			return false
		}
		resp, err = client.Get(j.QueryURL + "/api/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		for _, port := range []int{ogrpc, ohttp} {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		select {
		case <-p.Done():
			return nil, fmt.Errorf("jaeger exited during startup:\n%s", Tail(p.Log.String(), 2000))
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("jaeger not ready after 60s:\n%s", Tail(p.Log.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return j, nil
}

// JaegerTrace is one trace as the query API returns it.
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
}

// JaegerProcess is the resource a span came from.
type JaegerProcess struct {
	ServiceName string     `json:"serviceName"`
	Tags        []JaegerKV `json:"tags"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64      `json:"startTime"` // microseconds since the epoch
	Duration  int64      `json:"duration"`  // microseconds
	Tags      []JaegerKV `json:"tags"`
	Logs      []struct {
		Timestamp int64      `json:"timestamp"`
		Fields    []JaegerKV `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

// JaegerKV is a tag or log field.
type JaegerKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Tag returns the value of tag key formatted as text ("" and false when
// absent). Span kind and status are tags too: span.kind, otel.status_code,
// error.
func (s JaegerSpan) Tag(key string) (string, bool) {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value), true
		}
	}
	return "", false
}

// ParentID returns the span id of the CHILD_OF reference, or "".
func (s JaegerSpan) ParentID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Events returns the names of the span's events (logs with an "event" field).
func (s JaegerSpan) Events() []string {
	var out []string
	for _, l := range s.Logs {
		for _, f := range l.Fields {
			if f.Key == "event" {
				out = append(out, fmt.Sprint(f.Value))
			}
		}
	}
	return out
}

// Traces returns up to 1000 traces of service from the last hour. It
// returns an error rather than failing, so that callers can poll.
func (j *Jaeger) Traces(service string) ([]JaegerTrace, error) {
	q := url.Values{"service": {service}, "limit": {"1000"}, "lookback": {"1h"}}
	return j.query("/api/traces?" + q.Encode())
}

// Trace returns one trace by its hex id.
func (j *Jaeger) Trace(id string) (JaegerTrace, error) {
	ts, err := j.query("/api/traces/" + url.PathEscape(strings.ToLower(id)))
	if err != nil {
		return JaegerTrace{}, err
	}
	if len(ts) != 1 {
		return JaegerTrace{}, fmt.Errorf("trace %s: got %d traces", id, len(ts))
	}
	return ts[0], nil
}

func (j *Jaeger) query(path string) ([]JaegerTrace, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(j.QueryURL + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data   []JaegerTrace `json:"data"`
		Errors []struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %d: %v", path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(body.Errors) > 0 {
		return nil, fmt.Errorf("GET %s: %d %v", path, resp.StatusCode, body.Errors)
	}
	return body.Data, nil
}
