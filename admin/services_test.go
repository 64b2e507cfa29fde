package admin

import (
	"github.com/switchyard-gw/switchyard/internal/testenv"

	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

// catalog returns n services svc-000... with per instances each, every
// other instance out of rotation, and one route per service.
func catalog(n, per int) Options {
	now := time.Now()
	var all []health.ServiceStatus
	var routes []gateway.RouteInfo
	for i := range n {
		s := health.ServiceStatus{Name: fmt.Sprintf("svc-%03d", i)}
		for j := range per {
			in := instance(fmt.Sprintf("node-%d/%s-%d", j, s.Name, j), fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), j%2 == 0,
				"in rotation: consul: passing, probe: passing (12 consecutive)")
			in.Since = now.Add(-time.Hour)
			in.Registry.Status = "passing"
			in.Probe.Status, in.Probe.LastProbe = health.ProbeUp, &now
			if in.Routable {
				s.Healthy++
			}
			s.Instances = append(s.Instances, in)
		}
		s.Total = per
		all = append(all, s)
		routes = append(routes, gateway.RouteInfo{PathPrefix: "/" + s.Name, Service: s.Name})
	}
	opt := demoOptions(func() []health.ServiceStatus { return all })
	opt.Routes = func() []gateway.RouteInfo { return slices.Clone(routes) }
	return opt
}

func names(v ServicesResponse) []string {
	var out []string
	for _, s := range v.Services {
		out = append(out, s.Name)
	}
	return out
}

func decode(t *testing.T, h http.Handler, path string) (ServicesResponse, int) {
	t.Helper()
	rec := get(t, h, "GET", path)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	var v ServicesResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v, rec.Body.Len()
}

func TestServicesAPIFiltersAndPages(t *testing.T) {
	h := New(catalog(120, 2))
	for _, tc := range []struct {
		name, query           string
		first, last           string
		listed, matched, next int // next -1: no next page
		instances, routes     int
	}{
		{"no parameters lists every service with its instances", "", "svc-000", "svc-119", 120, 120, -1, 240, 120},
		{"a page of fifty", "?limit=50", "svc-000", "svc-049", 50, 120, 50, 100, 50},
		{"the last, short page has no next offset", "?limit=50&offset=100", "svc-100", "svc-119", 20, 120, -1, 40, 20},
		{"an offset past the end lists nothing", "?limit=50&offset=500", "", "", 0, 120, -1, 0, 0},
		{"a summary has counts but no instances", "?summary=true&limit=10", "svc-000", "svc-009", 10, 120, 10, 0, 10},
		{"named services only, repeated or comma-separated", "?service=svc-007&service=svc-009,svc-011&service=nope", "svc-007", "svc-011", 3, 3, -1, 6, 3},
		{"a name filter ignores case", "?q=SVC-01", "svc-010", "svc-019", 10, 10, -1, 20, 10},
		{"a filter and a page combine", "?q=svc-1&limit=5&offset=5", "svc-105", "svc-109", 5, 20, 10, 10, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := decode(t, h, "/api/v1/services"+tc.query)
			got := names(v)
			if len(got) != tc.listed || (tc.listed > 0 && (got[0] != tc.first || got[len(got)-1] != tc.last)) {
				t.Errorf("listed %d services %v..., want %d from %s to %s", len(got), got[:min(3, len(got))], tc.listed, tc.first, tc.last)
			}
			if v.Page.Matched != tc.matched {
				t.Errorf("matched = %d, want %d", v.Page.Matched, tc.matched)
			}
			if next := v.Page.NextOffset; (tc.next < 0) != (next == nil) || (next != nil && *next != tc.next) {
				t.Errorf("next_offset = %v, want %d", next, tc.next)
			}
			n := 0
			for _, s := range v.Services {
				n += len(s.Instances)
				if s.Total != 2 || s.Healthy != 1 {
					t.Errorf("service %s: total %d healthy %d, want 2 and 1", s.Name, s.Total, s.Healthy)
				}
			}
			if n != tc.instances || len(v.Routes) != tc.routes {
				t.Errorf("%d instances and %d routes, want %d and %d", n, len(v.Routes), tc.instances, tc.routes)
			}
			if v.Totals != (Totals{Services: 120, Instances: 240, InRotation: 120}) {
				t.Errorf("totals = %+v, want every service counted", v.Totals)
			}
		})
	}
}

func TestServicesAPIRejectsBadParameters(t *testing.T) {
	h := New(catalog(3, 1))
	for _, query := range []string{"limit=0", "limit=1001", "limit=ten", "offset=-1", "summary=maybe"} {
		rec := get(t, h, "GET", "/api/v1/services?"+query)
		param, value, _ := strings.Cut(query, "=")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), param+` \"`+value+`\"`) {
			t.Errorf("?%s = %d %s, want 400 naming %s and %q", query, rec.Code, rec.Body, param, value)
		}
	}
}

func TestDashboardAtFiveThousandServicesShipsKilobytesNotMegabytes(t *testing.T) {
	h := New(catalog(5000, 4))
	full := get(t, h, "GET", "/api/v1/services").Body.Len()
	page := get(t, h, "GET", "/").Body.String()
	// What the script fetches every refresh: the summary of one page, and
	// the instances of the services expanded on it (none by default here:
	// 50 services x 4 instances is over the auto-expand limit).
	sum, summary := decode(t, h, "/api/v1/services?summary=true&limit=50&offset=0")
	_, detail := decode(t, h, "/api/v1/services?service=svc-000&service=svc-001")
	t.Logf("full catalog %d KiB; first paint %d KiB; a refresh %d KiB, plus %d KiB per two expanded services",
		full>>10, len(page)>>10, summary>>10, detail>>10)
	if full < 4<<20 {
		t.Fatalf("the full catalog is only %d KiB: the test does not show what paging saves", full>>10)
	}
	if summary > 64<<10 || len(page) > 256<<10 {
		t.Errorf("a refresh ships %d KiB and the first paint %d KiB, want at most 64 and 256", summary>>10, len(page)>>10)
	}
	if len(sum.Services) != 50 || sum.Totals.Services != 5000 || sum.Totals.Instances != 20000 {
		t.Errorf("summary page lists %d services of %+v", len(sum.Services), sum.Totals)
	}
	if got := len(rowIDs(page)); got != 0 {
		t.Errorf("the first paint lists %d instance rows; a page over the auto-expand limit starts collapsed", got)
	}
	for _, want := range []string{`<b id="n-services">5000</b>`, `<b id="n-instances">20000</b>`, `services 1–50 of 5000`, `href="?offset=50"`, `<tbody class="svc" data-service="svc-049">`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, `data-service="svc-050"`) {
		t.Error("the first page lists a service of the second")
	}
}

func TestDashboardPageFromTheAddress(t *testing.T) {
	h := New(catalog(130, 1))
	page := get(t, h, "GET", "/?q=svc-1&offset=10").Body.String()
	// Names are svc-000..svc-129: the 30 from svc-100 contain "svc-1".
	for _, want := range []string{`services 11–30 of 30 matching (130 in all)`, `data-service="svc-110"`, `href="?offset=0&amp;q=svc-1"`, `value="svc-1"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if got := rowIDs(page); len(got) != 20 {
		t.Errorf("%d instance rows, want the 20 of the page (under the auto-expand limit)", len(got))
	}
}

// apiLog serves h and remembers the query of every /api/v1/services call.
type apiLog struct {
	mu      sync.Mutex
	queries []string
}

func (l *apiLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/services" {
			l.mu.Lock()
			l.queries = append(l.queries, r.URL.RawQuery)
			l.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (l *apiLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.queries)
}

func TestDashboardPagesInBrowser(t *testing.T) {
	bin := chromium(t)
	var log apiLog
	srv := httptest.NewServer(log.wrap(New(catalog(130, 3))))
	defer srv.Close()

	// The second page: 50 services x 3 instances, over the auto-expand
	// limit, so the script fetches only the page's summary.
	dom := runChromium(t, bin, srv.URL+"/?offset=50", "--dump-dom")
	queries := log.all()
	if len(queries) == 0 {
		t.Fatalf("the page never refreshed; DOM:\n%s", testenv.Tail(dom, 3000))
	}
	for _, q := range queries {
		if q != "summary=true&limit=50&offset=50" {
			t.Errorf("the script asked for ?%s, want only the summary of its page", q)
		}
	}
	for _, want := range []string{`data-refreshed="1"`, `data-service="svc-050"`, `data-service="svc-099"`,
		`<span id="pager" class="pager">services 51–100 of 130</span>`, `<a id="prev" class="pg" href="?offset=0">`, `<a id="next" class="pg" href="?offset=100">`,
		`<tr class="group" data-expanded="false">`} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %s", want)
		}
	}
	for _, bad := range []string{`data-service="svc-049"`, `data-service="svc-100"`, `<tr class="inst`} {
		if strings.Contains(dom, bad) {
			t.Errorf("DOM has %s: a service off the page, or instances of a collapsed one", bad)
		}
	}

	// A filter small enough to expand: the script fetches the summary, then
	// the instances of exactly the services on the page.
	log.mu.Lock()
	log.queries = nil
	log.mu.Unlock()
	dom = runChromium(t, bin, srv.URL+"/?q=svc-12", "--dump-dom")
	var details int
	for _, q := range log.all() {
		switch {
		case q == "summary=true&limit=50&offset=0&q=svc-12":
		case strings.HasPrefix(q, "service=svc-120&service=svc-121&") && strings.HasSuffix(q, "&service=svc-129"):
			details++
		default:
			t.Errorf("the script asked for ?%s", q)
		}
	}
	if details == 0 {
		t.Error("the script never fetched the instances of the expanded services")
	}
	for _, want := range []string{`data-refreshed="1"`, `data-id="node-2/svc-125-2"`, `services 1–10 of 10 matching (130 in all)`, `<b id="n-services">130</b>`, `<b id="n-instances">390</b>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("filtered DOM lacks %s", want)
		}
	}
}
