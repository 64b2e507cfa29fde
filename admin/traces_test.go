package admin

import (
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
