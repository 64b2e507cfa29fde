package admin

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-gw/switchyard/health"
)

// The dashboard is one server-rendered page (html/template) that a small
// inline script keeps current by fetching api/v1/services every
// refreshInterval and updating the DOM in place. It shows one page of
// pageSize services at a time: each refresh fetches that page's summary
// (?summary=true&limit=&offset=&q=) and the instances of the services
// shown expanded (?service=), never the whole catalog. Both render the same
// ServicesResponse, with the same wording: the formatting helpers below have
// twins in dashboard.html (fmtAgo, fmtLatency, statusClass, groupVerdict),
// so the first paint and every refresh look alike. Without JavaScript the
// page reloads itself through a <noscript> meta refresh instead.

//go:embed dashboard.html
var dashboardHTML string

// dashboardTemplate is parsed once at init and only executed afterwards,
// which html/template allows concurrently.
var dashboardTemplate = template.Must(template.New("dashboard").Parse(dashboardHTML))

// refreshInterval is how often the page refreshes itself.
const refreshInterval = 2500 * time.Millisecond

// pageSize is the number of services on one dashboard page; a page whose
// services hold at most autoExpand instances shows them all, a larger one
// shows only service rows until one is expanded. The script has twins of
// both (PAGE_SIZE, AUTO_EXPAND).
const (
	pageSize   = 50
	autoExpand = 100
)

// dashboard serves the operator page. It renders servicesView, the very
// value GET /api/v1/services encodes for the page's query, so the page
// never shows a different truth than the API. ?q= and ?offset= select the
// page, as the script's filter box and pager do.
func dashboard(opt Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		nonce := rand.Text() // 26 base32 characters, 130 random bits
		q := servicesQuery{search: strings.TrimSpace(r.URL.Query().Get("q")), limit: pageSize, summary: true}
		if n, err := strconv.Atoi(r.URL.Query().Get("offset")); err == nil && n > 0 {
			q.offset = n
		}
		v := servicesView(opt, q)
		if pageInstances(v.Services) <= autoExpand && len(v.Services) > 0 {
			v.Services = withTotals(detail(opt, v.Services))
		}
		page := newDashboardPage(v, time.Now(), nonce)
		var buf bytes.Buffer
		if err := dashboardTemplate.Execute(&buf, page); err != nil {
			http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
			return
		}
		writePage(w, nonce, buf.Bytes())
	}
}

// dashboardPage is what the template renders: ServicesResponse with every
// value already in words.
type dashboardPage struct {
	Nonce       string
	RefreshMS   int64
	RefreshText string

	Services  int
	Instances int
	In, Out   int

	Query      string // the filter
	Offset     int
	Pager      string // "services 1–50 of 5000"
	Prev, Next string // hrefs; "" when there is no such page
	PageSize   int
	AutoExpand int

	Discovery discoveryLine
	Groups    []serviceGroup
	Routes    []routeLine
	Balance   []balanceLine
}

type discoveryLine struct {
	Class string // ok, warn, bad
	Text  string
	Title string
}

type serviceGroup struct {
	Name      string
	Healthy   int
	Total     int
	Expanded  bool   // its instances are listed
	Class     string // ok, warn (some out), bad (none in)
	Summary   string
	RoutesTo  string // the route matches that lead here, or ""
	Instances []instanceLine
}

type instanceLine struct {
	ID, Address, Reason string
	Routable            bool
	Verdict             string // "in" or "out"
	Since               string

	RegStatus, RegClass string
	RegDetail           string // failing check and its output

	ProbeStatus, ProbeClass string
	Passes, Fails           int
	Latency, LastProbe      string
	LastError               string
}

type routeLine struct {
	Host, PathPrefix, Service string
	Strip                     bool
	Health                    string // "2/3", "" for an unknown service
	HealthClass               string
}

func newDashboardPage(v ServicesResponse, now time.Time, nonce string) dashboardPage {
	p := dashboardPage{
		Nonce:       nonce,
		RefreshMS:   refreshInterval.Milliseconds(),
		RefreshText: strconv.FormatFloat(refreshInterval.Seconds(), 'g', -1, 64) + " s",
		Services:    v.Totals.Services,
		Instances:   v.Totals.Instances,
		In:          v.Totals.InRotation,
		Out:         v.Totals.Instances - v.Totals.InRotation,
		Discovery:   newDiscoveryLine(v.Discovery),
		Offset:      v.Page.Offset,
		PageSize:    pageSize,
		AutoExpand:  autoExpand,
		Balance:     newBalanceLines(v.Balancing),
	}
	p.Query = v.Page.Query
	p.Pager, p.Prev, p.Next = pager(v.Page, len(v.Services), v.Totals.Services)
	matches := map[string]string{} // service -> "host/prefix, ..."
	for _, r := range v.Routes {
		m := r.Host + r.PathPrefix
		if prev := matches[r.Service]; prev != "" {
			m = prev + ", " + m
		}
		matches[r.Service] = m
	}
	inRotation := map[string]string{} // service -> "2/3"
	inRotationClass := map[string]string{}
	for _, s := range v.Services {
		g := serviceGroup{Name: s.Name, Healthy: s.Healthy, Total: s.Total, RoutesTo: matches[s.Name], Expanded: s.Instances != nil}
		g.Class, g.Summary = groupVerdict(g.Healthy, g.Total)
		for _, in := range s.Instances {
			g.Instances = append(g.Instances, newInstanceLine(in, now))
		}
		inRotation[s.Name] = fmt.Sprintf("%d/%d", g.Healthy, g.Total)
		inRotationClass[s.Name] = g.Class
		p.Groups = append(p.Groups, g)
	}
	for _, r := range v.Routes {
		p.Routes = append(p.Routes, routeLine{
			Host: r.Host, PathPrefix: r.PathPrefix, Service: r.Service, Strip: r.StripPrefix,
			Health: inRotation[r.Service], HealthClass: inRotationClass[r.Service],
		})
	}
	return p
}

// pageInstances counts the instances of the listed services.
func pageInstances(ss []health.ServiceStatus) int {
	n := 0
	for _, s := range ss {
		n += s.Total
	}
	return n
}

// pager words which services a page lists and links the pages around it;
// its twin in dashboard.html is pagerText.
func pager(pg Page, listed, total int) (text, prev, next string) {
	switch {
	case pg.Matched == 0 && total > 0:
		text = "no service matches"
	case pg.Matched == 0:
		text = "no services"
	default:
		text = fmt.Sprintf("services %d–%d of %d", pg.Offset+1, pg.Offset+listed, pg.Matched)
		if pg.Matched < total {
			text += fmt.Sprintf(" matching (%d in all)", total)
		}
	}
	href := func(offset int) string {
		v := url.Values{"offset": {strconv.Itoa(offset)}}
		if pg.Query != "" {
			v.Set("q", pg.Query)
		}
		return "?" + v.Encode()
	}
	if pg.Offset > 0 {
		prev = href(max(0, pg.Offset-pageSize))
	}
	if pg.NextOffset != nil {
		next = href(*pg.NextOffset)
	}
	return text, prev, next
}

// groupVerdict words a service's health for its header row.
func groupVerdict(healthy, total int) (class, summary string) {
	switch {
	case total == 0:
		return "bad", "no instances"
	case healthy == 0:
		return "bad", "none in rotation: requests get 503"
	case healthy < total:
		return "warn", fmt.Sprintf("%d of %d in rotation", healthy, total)
	default:
		return "ok", fmt.Sprintf("all %d in rotation", total)
	}
}

func newDiscoveryLine(d DiscoveryView) discoveryLine {
	provider := d.Provider
	if provider == "" {
		provider = "discovery"
	}
	switch {
	case d.LastError != "":
		l := discoveryLine{Class: "bad", Text: provider + ": " + d.LastError, Title: "serving the last good snapshot"}
		if d.LastSuccess != nil {
			l.Title += ", synced " + fmtAgo(time.Duration(d.AgeSeconds*float64(time.Second)))
		}
		return l
	case d.LastSuccess == nil:
		return discoveryLine{Class: "warn", Text: provider + ": waiting for the first snapshot"}
	default:
		return discoveryLine{Class: "ok", Text: provider + " · synced " + fmtAgo(time.Duration(d.AgeSeconds*float64(time.Second)))}
	}
}

func newInstanceLine(in health.InstanceStatus, now time.Time) instanceLine {
	l := instanceLine{
		ID: in.ID, Address: in.Address, Reason: in.Reason, Routable: in.Routable,
		Verdict: "out",
		Since:   "—",

		RegStatus: in.Registry.Status, RegClass: statusClass(in.Registry.Status),

		ProbeStatus: string(in.Probe.Status), ProbeClass: statusClass(string(in.Probe.Status)),
		Passes: in.Probe.ConsecutiveOK, Fails: in.Probe.ConsecutiveFail,
		Latency:   "—",
		LastProbe: "never",
		LastError: in.Probe.LastError,
	}
	if in.Routable {
		l.Verdict = "in"
	}
	if !in.Since.IsZero() {
		l.Since = fmtAgo(now.Sub(in.Since))
	}
	if l.RegStatus == "none" || l.RegStatus == "" {
		l.RegStatus = "—"
	}
	l.RegDetail = in.Registry.Check
	if in.Registry.Output != "" {
		if l.RegDetail != "" {
			l.RegDetail += ": "
		}
		l.RegDetail += in.Registry.Output
	}
	if in.Probe.LastProbe != nil {
		l.Latency = fmtLatency(in.Probe.LastLatencyMS)
		l.LastProbe = fmtAgo(now.Sub(*in.Probe.LastProbe))
	}
	return l
}

// statusClass maps a registry or probe status to a colour class.
func statusClass(s string) string {
	switch s {
	case "passing":
		return "ok"
	case "warning", "maintenance":
		return "warn"
	case "critical", "failing":
		return "bad"
	default: // none, unknown, disabled
		return "muted"
	}
}

// fmtAgo words a past duration coarsely: "4s ago", "3m 20s ago", "2h 5m ago".
func fmtAgo(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 0:
		s = 0
		fallthrough
	case s < 60:
		return strconv.FormatInt(s, 10) + "s ago"
	case s < 3600:
		return fmt.Sprintf("%dm %ds ago", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm ago", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd %dh ago", s/86400, s%86400/3600)
	}
}

// fmtLatency words a latency in milliseconds with about three significant
// digits: "0.42 ms", "12.3 ms", "1503 ms".
func fmtLatency(ms float64) string {
	prec := 0
	switch {
	case ms < 10:
		prec = 2
	case ms < 100:
		prec = 1
	}
	return strconv.FormatFloat(ms, 'f', prec, 64) + " ms"
}

// writePage answers an admin HTML page with the headers every such page
// carries. Only the page's own inline script and style (those with nonce)
// run, and the script may talk to this origin only: a value that slipped
// past escaping still could not execute or exfiltrate.
func writePage(w http.ResponseWriter, nonce string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; "+
		"script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; "+
		"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Write(body)
}
