package telemetry

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// Whether the traceparent goes into the request head directly (the fast
// core over the gateway's own transport, unsampled) or through the header
// map (a body, so ReverseProxy; a sampled request), the instance gets
// exactly one traceparent, the gateway's, and the trusted client's
// tracestate or none: never the client's fields beside ours.
func TestTheInstanceGetsOneTraceparentWhateverTheClientSent(t *testing.T) {
	const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, sampler := range []string{"traceidratio:0", "failures+traceidratio:0", "traceidratio:1"} {
		for _, trust := range []bool{true, false} {
			name, arg, _ := strings.Cut(sampler, ":")
			t.Run(sampler+"/trust="+strconv.FormatBool(trust), func(t *testing.T) {
				b := newBackend(t)
				cfg := config.Default().Telemetry
				cfg.Sampler = name
				cfg.SamplerArg, _ = strconv.ParseFloat(arg, 64)
				cfg.TrustIncomingTrace = trust
				r := newRig(t, rigOpts{cfg: cfg, instances: []discovery.Instance{{ID: "web-1", Address: b.addr()}}})
				for _, body := range []string{"", "with a body"} {
					for _, client := range []http.Header{
						{},
						{"Traceparent": {incoming}, "Tracestate": {"client=1"}},
						{"Tracestate": {"client=1"}},
					} {
						id := body + "|" + strings.Join(client["Traceparent"], "") + "|" + strings.Join(client["Tracestate"], "")
						var rb io.Reader
						if body != "" {
							rb = strings.NewReader(body)
						}
						r.send(t, "POST", "/api", id, client, rb)
						seen := b.headers(id)
						if seen == nil {
							t.Fatalf("%q: the instance saw no request", id)
						}
						tp := seen["Traceparent"]
						if len(tp) != 1 || tp[0] == incoming {
							t.Errorf("%q: instance got traceparent %q, want one of the gateway's", id, tp)
						} else {
							parseTraceparent(t, tp[0])
						}
						var want []string
						if trust && len(client["Traceparent"]) > 0 {
							want = []string{"client=1"}
						}
						if got := seen["Tracestate"]; strings.Join(got, ",") != strings.Join(want, ",") || len(got) != len(want) {
							t.Errorf("%q: instance got tracestate %q, want %q", id, got, want)
						}
					}
				}
			})
		}
	}
}
