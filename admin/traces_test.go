package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestTheTracesPageRunsOnlyItsOwnScript(t *testing.T) {
	rec := httptest.NewRecorder()
	TracesPage().ServeHTTP(rec, httptest.NewRequest("GET", "/traces", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Z2-7]+)'`).FindStringSubmatch(csp)
	if m == nil {
		t.Fatalf("CSP %q has no script nonce", csp)
	}
	body := rec.Body.String()
	if n := strings.Count(body, `<script nonce="`+m[1]+`">`); n != 1 || strings.Count(body, "<script") != 1 {
		t.Errorf("want exactly one script, with the CSP's nonce; page:\n%s", body)
	}
	if !strings.Contains(body, "fetch('api/v1/traces'") || strings.Contains(body, "innerHTML") {
		t.Error("the page must read api/v1/traces and never parse what it returns as HTML")
	}
}

// The page, in a real browser, shows what the API returns, as text.
func TestTheTracesPageInBrowser(t *testing.T) {
	bin := chromium(t)
	const api = `{"ui_url":"http://jaeger.example:16686","traces":[{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",` +
		`"name":"GET /api","route":"/api","service":"web","status":502,"start":"2026-11-30T06:00:00Z","duration_ms":12.5,` +
		`"kept_after":["5xx"],"url":"http://jaeger.example:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736",` +
		`"attempts":[{"n":0,"instance":"<img src=x id=hostile>","error":"dial_error","duration_ms":0.4,"healthy_instances":2},` +
		`{"n":1,"instance":"web-2","status":502,"duration_ms":11.9,"healthy_instances":2}]}]}`
	mux := http.NewServeMux()
	mux.Handle("GET /traces", TracesPage())
	mux.HandleFunc("GET /api/v1/traces", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, api)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dom := runChromium(t, bin, srv.URL+"/traces", "--dump-dom")
	for _, want := range []string{
		`<a href="http://jaeger.example:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736">4bf92f3577b34da6a3ce929d0e0e4736</a>`,
		"#1 web-2 502 11.9ms 2", "dial_error", "&lt;img src=x id=hostile&gt;", ">5xx<",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q; DOM:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, `id="hostile"`) {
		t.Error("an instance name from the API became an element")
	}
}
