package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TracedEcho is one request sent by FollowTrace and what Jaeger stored of it.
type TracedEcho struct {
	Backend string // the demo backend that answered (its name)
	Trace   JaegerTrace
	Server  *JaegerSpan // the gateway's server span
	Attempt *JaegerSpan // the client span of the attempt that reached Backend
}

// FollowTrace sends GET gateway+"/echo" (a demo backend's echo endpoint)
// with a caller's traceparent and checks what every deployment of the
// demo must show: the backend received the trace continued, and Jaeger at
// jaegerURL holds the gateway's server span (service "switchyard",
// parent: the caller's span) and the client span of the attempt (parent:
// the server span) that the backend saw as its parent. The caller checks
// what depends on its deployment (instance ids, addresses).
func FollowTrace(t testing.TB, client *http.Client, gateway, jaegerURL string) TracedEcho {
	t.Helper()
	traceID, callerSpan := randomHex(16), randomHex(8)
	req, _ := http.NewRequest(http.MethodGet, gateway+"/echo", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Name    string      `json:"name"`
		Headers http.Header `json:"headers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /echo: %d %v", resp.StatusCode, err)
	}
	tp := strings.Split(echo.Headers.Get("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID {
		t.Fatalf("%s saw traceparent %q, want trace %s continued", echo.Name, echo.Headers.Get("Traceparent"), traceID)
	}
	upstreamParent := tp[2]

	jaeger := &Jaeger{QueryURL: jaegerURL}
	out := TracedEcho{Backend: echo.Name}
	// Spans leave the gateway in batches, every 5 s by default.
	WaitFor(t, 30*time.Second, "trace "+traceID+" in Jaeger with the server span and the client span "+upstreamParent, func() bool {
		if out.Trace, err = jaeger.Trace(traceID); err != nil {
			return false
		}
		out.Server, out.Attempt = nil, nil
		for i, s := range out.Trace.Spans {
			switch kind, _ := s.Tag("span.kind"); {
			case kind == "server":
				out.Server = &out.Trace.Spans[i]
			case kind == "client" && s.SpanID == upstreamParent:
				out.Attempt = &out.Trace.Spans[i]
			}
		}
		return out.Server != nil && out.Attempt != nil
	})
	if p := out.Trace.Processes[out.Server.ProcessID]; p.ServiceName != "switchyard" {
		t.Errorf("service.name %q, want switchyard (OTEL_SERVICE_NAME)", p.ServiceName)
	}
	if out.Server.ParentID() != callerSpan {
		t.Errorf("server span's parent %q, want the caller's span %s", out.Server.ParentID(), callerSpan)
	}
	if out.Attempt.ParentID() != out.Server.SpanID {
		t.Errorf("client span's parent %q, want the server span %s", out.Attempt.ParentID(), out.Server.SpanID)
	}
	return out
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
