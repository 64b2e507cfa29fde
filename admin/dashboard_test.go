package admin

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

const hostileReason = `<script>alert("pwned")</script>`

func instance(id, addr string, routable bool, reason string) health.InstanceStatus {
	in := health.InstanceStatus{ID: id, Address: addr, Routable: routable, Reason: reason}
	in.Registry.Status = "none"
	in.Probe.Status = health.ProbeUnknown
	return in
}

// demoServices is what a compose demo looks like with backend-2 flipped
// unhealthy: one service from Consul with one instance out, and one static
// service that has not been probed yet.
func demoServices(now time.Time) []health.ServiceStatus {
	probed := now.Add(-1200 * time.Millisecond)

	b1 := instance("web-backend-1", "backend-1:9000", true, "probe passing, consul passing")
	b1.Since = now.Add(-4*time.Minute - 12*time.Second)
	b1.Registry.Status = "passing"
	b1.Probe.Status, b1.Probe.ConsecutiveOK, b1.Probe.LastLatencyMS, b1.Probe.LastProbe = health.ProbeUp, 57, 1.234, &probed

	b2 := instance("web-backend-2", "backend-2:9000", false,
		"consul: critical (web /health: HTTP GET http://backend-2:9000/health: 500 Internal Server Error); probe: failing (unexpected status 500)")
	b2.Since = now.Add(-9 * time.Second)
	b2.Registry.Status, b2.Registry.Check = "critical", "web /health"
	b2.Registry.Output = "HTTP GET http://backend-2:9000/health: 500 Internal Server Error Output: unhealthy"
	b2.Probe.Status, b2.Probe.ConsecutiveFail, b2.Probe.LastLatencyMS, b2.Probe.LastProbe = health.ProbeDown, 4, 0.87, &probed
	b2.Probe.LastError = "unexpected status 500 from http://backend-2:9000/health"

	b3 := instance("web-backend-3", "backend-3:9000", true, "probe passing, consul passing")
	b3.Since = now.Add(-4 * time.Minute)
	b3.Registry.Status = "passing"
	b3.Probe.Status, b3.Probe.ConsecutiveOK, b3.Probe.LastLatencyMS, b3.Probe.LastProbe = health.ProbeUp, 61, 23.45, &probed

	api := instance("api-1", "10.0.4.17:8081", false, "probe: not probed yet")

	return []health.ServiceStatus{
		{Name: "api", Healthy: 0, Instances: []health.InstanceStatus{api}},
		{Name: "web", Healthy: 2, Instances: []health.InstanceStatus{b1, b2, b3}},
	}
}

func demoRoutes() []gateway.RouteInfo {
	return []gateway.RouteInfo{
		{Host: "api.example.com", PathPrefix: "/", Service: "api"},
		{PathPrefix: "/api", Service: "api", StripPrefix: true},
		{PathPrefix: "/", Service: "web"},
	}
}

func demoOptions(services func() []health.ServiceStatus) Options {
	started := time.Now()
	return Options{
		Ready:    func() bool { return true },
		Services: services,
		Routes:   demoRoutes,
		Discovery: func() discovery.Status {
			return discovery.Status{Provider: "consul", LastSuccess: started.Add(-1500 * time.Millisecond)}
		},
	}
}

// hostileOptions adds an instance whose every field tries to inject markup.
func hostileOptions() Options {
	return demoOptions(func() []health.ServiceStatus {
		s := demoServices(time.Now())
		evil := instance(`evil"><b>1`, `<i>10.0.0.9:80</i>`, false, hostileReason)
		evil.Registry.Status, evil.Registry.Check, evil.Registry.Output = "critical", "<u>check</u>", "<img src=x onerror=alert(1)>"
		evil.Probe.LastError = "</td></tr><script>alert(2)</script>"
		s[1].Instances = append(s[1].Instances, evil)
		return s
	})
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

var dataID = regexp.MustCompile(`<tr class="inst[^"]*" data-id="([^"]*)"`)

// rowIDs returns the instance ids of the page's instance rows, in order.
func rowIDs(page string) []string {
	var ids []string
	for _, m := range dataID.FindAllStringSubmatch(page, -1) {
		ids = append(ids, html.UnescapeString(m[1]))
	}
	return ids
}

func TestDashboardRendersEveryInstance(t *testing.T) {
	now := time.Now()
	h := New(demoOptions(func() []health.ServiceStatus { return demoServices(now) }))
	rec := get(t, h, "GET", "/")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	page := rec.Body.String()

	if got, want := rowIDs(page), []string{"api-1", "web-backend-1", "web-backend-2", "web-backend-3"}; !slices.Equal(got, want) {
		t.Errorf("instance rows = %q, want %q", got, want)
	}
	for _, want := range []string{
		`<tbody class="svc" data-service="web">`,
		`data-id="web-backend-2" data-routable="false"`,
		`<span class="pill out">out</span>`,
		`<span class="pill in">in</span>`,
		// registry status with the failing check and its output
		`<span class="st bad">critical</span><div class="sub" title="web /health: HTTP GET http://backend-2:9000/health: 500 Internal Server Error Output: unhealthy">`,
		// probe status, consecutive counts, latency, last error
		`<span class="st bad">failing</span><div class="sub err" title="unexpected status 500 from http://backend-2:9000/health">`,
		`>✗ 4</span>`, `>✓ 57</span>`,
		`>1.23 ms</td>`, `>23.4 ms</td>`,
		`unexpected status 500 from http://backend-2:9000/health`,
		// the reason in words
		`consul: critical (web /health: HTTP GET http://backend-2:9000/health: 500 Internal Server Error); probe: failing (unexpected status 500)`,
		// unprobed instance
		`>never</td>`, `>probe: not probed yet<`,
		// service summaries and routes
		`<span class="badge warn">2/3</span><span class="gsum">2 of 3 in rotation</span><span class="groutes">/</span>`,
		`<span class="gsum">none in rotation: requests get 503</span><span class="groutes">api.example.com/, /api</span>`,
		`<td class="mono">api.example.com</td>`,
		// header counts and discovery freshness
		`<b id="n-services">2</b>`, `<b id="n-instances">4</b>`, `<b id="n-in">2</b>`, `<b id="n-out">2</b>`,
		`<span id="disc" class="chip ok" title="">consul · synced 1s ago</span>`,
		`data-refreshed="0"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestDashboardEscapesInstanceData(t *testing.T) {
	rec := get(t, New(hostileOptions()), "GET", "/")
	page := rec.Body.String()
	for _, bad := range []string{"<script>alert", "<b>1", "<i>10.0", "<u>check", "<img src=x", "</td></tr><script>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	for _, want := range []string{
		`&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`, // text
		`data-id="evil&#34;&gt;&lt;b&gt;1"`,                   // attribute
		`&lt;img src=x onerror=alert(1)&gt;`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks escaped %s", want)
		}
	}
	if got := rowIDs(page); !slices.Contains(got, `evil"><b>1`) {
		t.Errorf("hostile instance has no row of its own: rows %q", got)
	}

	// Defence in depth: only the page's own, nonced script may run.
	csp := rec.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Z2-7]+)'`).FindStringSubmatch(csp)
	if m == nil {
		t.Fatalf("Content-Security-Policy %q has no script nonce", csp)
	}
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("page has %d script elements, want 1", n)
	}
	if !strings.Contains(page, `<script nonce="`+m[1]+`">`) {
		t.Errorf("the script does not carry the CSP nonce %q", m[1])
	}
	if again := get(t, New(hostileOptions()), "GET", "/").Header().Get("Content-Security-Policy"); again == csp {
		t.Error("the nonce is the same on two requests")
	}
}

func TestDashboardShowsTheDataOfTheJSONAPI(t *testing.T) {
	h := New(demoOptions(func() []health.ServiceStatus { return demoServices(time.Now()) }))
	page := get(t, h, "GET", "/").Body.String()

	rec := get(t, h, "GET", "/api/v1/services")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/services = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var v ServicesResponse
	if err := json.NewDecoder(rec.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	var apiIDs []string
	for _, s := range v.Services {
		for _, in := range s.Instances {
			apiIDs = append(apiIDs, in.ID)
		}
	}
	if got := rowIDs(page); !slices.Equal(got, apiIDs) {
		t.Errorf("page rows %q, API instances %q", got, apiIDs)
	}
	if v.Discovery.Provider != "consul" || v.Discovery.LastSuccess == nil || len(v.Routes) != 3 {
		t.Errorf("API discovery %+v, routes %+v", v.Discovery, v.Routes)
	}
	// The script refreshes from that same endpoint, relative to the page,
	// one page of summaries at a time.
	if !strings.Contains(page, `getJSON('api/v1/services?' + q`) || !strings.Contains(page, `'summary=true&limit=' + PAGE_SIZE`) {
		t.Error("the page does not fetch summary pages of api/v1/services")
	}
}

func TestDashboardIsOnlyAtTheRoot(t *testing.T) {
	h := New(Options{})
	for _, tc := range []struct {
		name, method, path string
		want               int
	}{
		{"the root serves the dashboard", "GET", "/", http.StatusOK},
		{"HEAD is answered like GET", "HEAD", "/", http.StatusOK},
		{"an unknown path is not found", "GET", "/nope", http.StatusNotFound},
		{"POST to the root is not allowed", "POST", "/", http.StatusMethodNotAllowed},
		{"the other endpoints still answer", "GET", "/healthz", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(t, h, tc.method, tc.path).Code; got != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

func TestDashboardWithNothingToShow(t *testing.T) {
	page := get(t, New(Options{}), "GET", "/").Body.String()
	for _, want := range []string{
		`<tbody id="no-services"><tr><td colspan="10" class="empty">No services discovered yet.</td>`,
		`<td colspan="6" class="empty">No routes.</td>`,
		`class="chip warn" title="">discovery: waiting for the first snapshot</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestDashboardDiscoveryError(t *testing.T) {
	last := time.Now().Add(-75 * time.Second)
	h := New(Options{Discovery: func() discovery.Status {
		return discovery.Status{Provider: "consul", LastSuccess: last, LastError: "Unexpected response code: 500", ErrorSince: last}
	}})
	page := get(t, h, "GET", "/").Body.String()
	want := `<span id="disc" class="chip bad" title="serving the last good snapshot, synced 1m 15s ago">consul: Unexpected response code: 500</span>`
	if !strings.Contains(page, want) {
		t.Errorf("page lacks %s", want)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s ago"},
		{900 * time.Millisecond, "0s ago"},
		{59 * time.Second, "59s ago"},
		{200 * time.Second, "3m 20s ago"},
		{2*time.Hour + 5*time.Minute + 9*time.Second, "2h 5m ago"},
		{50 * time.Hour, "2d 2h ago"},
	} {
		if got := fmtAgo(tc.d); got != tc.want {
			t.Errorf("fmtAgo(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ms   float64
		want string
	}{{0.4213, "0.42 ms"}, {9.5, "9.50 ms"}, {12.34, "12.3 ms"}, {1503.4, "1503 ms"}} {
		if got := fmtLatency(tc.ms); got != tc.want {
			t.Errorf("fmtLatency(%v) = %q, want %q", tc.ms, got, tc.want)
		}
	}
}
