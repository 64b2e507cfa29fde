package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// headCtx is a Request hook's context with fields of its own for the head.
type headCtx struct {
	context.Context
	line string
}

func (c headCtx) AppendHeadFields(b []byte) []byte { return append(b, c.line...) }

// An attempt is Direct only when the fast core sends it over the gateway's
// own transport: then the outgoing request's context is the hook's own,
// its fields reach the instance through the head, and the client's fields
// named in Hooks.Fields do not. A request with a body (ReverseProxy) and a
// transport given in Options are not Direct, and keep the client's fields.
func TestDirectAttemptsWriteTheHookContextsFields(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{}
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("X-Case")] = r.Header.Clone()
		mu.Unlock()
	})
	for _, own := range []bool{true, false} {
		var direct []bool
		var sameCtx []bool
		var hookCtx context.Context
		hooks := Hooks{
			Request: func(r *http.Request, route, service string) (context.Context, RequestEnd) {
				hookCtx = headCtx{r.Context(), "X-Own: gateway\r\n"}
				return hookCtx, nil
			},
			Attempt: func(req *http.Request, a Attempt) AttemptEnd {
				direct = append(direct, a.Direct)
				sameCtx = append(sameCtx, req.Context() == hookCtx)
				return nil
			},
			Fields: []string{"x-own"},
		}
		opt := Options{Hooks: hooks}
		if !own {
			opt.Transport = http.DefaultTransport
		}
		_, front := setup(t, opt, addr(be))
		for _, body := range []string{"", "a body"} {
			direct, sameCtx = nil, nil
			name := "own=" + strconv.FormatBool(own) + ",body=" + body
			req, _ := http.NewRequest("POST", front.URL+"/", strings.NewReader(body))
			if body == "" {
				req.Body = nil
			}
			req.Header.Set("X-Case", name)
			req.Header.Set("X-Own", "client")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wantDirect := own && body == ""
			if len(direct) != 1 || direct[0] != wantDirect {
				t.Errorf("%s: Direct %v, want [%v]", name, direct, wantDirect)
			}
			if wantDirect && !sameCtx[0] {
				t.Errorf("%s: a Direct attempt's request does not carry the hook's context", name)
			}
			mu.Lock()
			got := seen[name]["X-Own"]
			mu.Unlock()
			want := "client" // not the fast core: the hook would replace it
			switch {
			case wantDirect:
				want = "gateway"
			case body == "":
				want = "" // the fast core drops it; nothing writes the hook's
			}
			if strings.Join(got, ",") != want {
				t.Errorf("%s: instance got X-Own %q, want %q", name, got, want)
			}
		}
	}
}
