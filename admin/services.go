package admin

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-gw/switchyard/gateway"
	"github.com/switchyard-gw/switchyard/health"
)

// maxLimit caps one page of GET /api/v1/services.
const maxLimit = 1000

// ServicesResponse is the body of GET /api/v1/services.
type ServicesResponse struct {
	// Services are the services selected by the query, sorted by name;
	// without instances in summary mode.
	Services []health.ServiceStatus `json:"services"`
	// Routes lead to the listed services, or to services nobody knows
	// (they answer 503); every route when the query selects every service.
	Routes    []gateway.RouteInfo `json:"routes"`
	Discovery DiscoveryView       `json:"discovery"`
	// Totals count every service, whatever the query selects.
	Totals Totals `json:"totals"`
	// Page says which part of the matching services was listed.
	Page Page `json:"page"`
	// Balancing shows, for the listed services, the policy and, per
	// routable instance, its configured and effective weight and requests
	// in flight.
	Balancing []gateway.BalanceInfo `json:"balancing"`
}

// Totals count every known service and instance.
type Totals struct {
	Services   int `json:"services"`
	Instances  int `json:"instances"`
	InRotation int `json:"in_rotation"`
}

// Page describes the listed slice of the services matching the filters.
type Page struct {
	Matched    int    `json:"matched"` // services matching service= and q=
	Query      string `json:"q,omitempty"`
	Offset     int    `json:"offset"`
	Limit      int    `json:"limit,omitempty"`       // 0: no limit
	NextOffset *int   `json:"next_offset,omitempty"` // set when more match
}

// DiscoveryView shows the freshness of the discovery source.
type DiscoveryView struct {
	Provider    string     `json:"provider"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  float64    `json:"age_seconds"`
	Stale       bool       `json:"stale"`
	LastError   string     `json:"last_error,omitempty"`
	ErrorSince  *time.Time `json:"error_since,omitempty"`
}

// servicesQuery selects services for GET /api/v1/services; the zero value
// selects every service with its instances.
type servicesQuery struct {
	names   []string // service=: only these (exact names)
	search  string   // q=: only names containing this, ignoring case
	offset  int
	limit   int  // 0: all
	summary bool // no instances
}

func (q servicesQuery) selectsAll() bool {
	return len(q.names) == 0 && q.search == "" && q.offset == 0 && q.limit == 0
}

// parseServicesQuery reads the query parameters; an error names the
// parameter and its value.
func parseServicesQuery(v url.Values) (servicesQuery, error) {
	var q servicesQuery
	for _, s := range v["service"] {
		for _, name := range strings.Split(s, ",") {
			if name = strings.TrimSpace(name); name != "" {
				q.names = append(q.names, name)
			}
		}
	}
	q.search = strings.TrimSpace(v.Get("q"))
	var err error
	if q.offset, err = intParam(v, "offset", 0, 1<<30); err != nil {
		return q, err
	}
	if q.limit, err = intParam(v, "limit", 1, maxLimit); err != nil {
		return q, err
	}
	if s := v.Get("summary"); s != "" {
		if q.summary, err = strconv.ParseBool(s); err != nil {
			return q, fmt.Errorf("summary %q: want true or false", s)
		}
	}
	return q, nil
}

func intParam(v url.Values, name string, min, max int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s %q: want a whole number from %d to %d", name, s, min, max)
	}
	return n, nil
}

// servicesView is what GET /api/v1/services answers for q.
func servicesView(opt Options, q servicesQuery) ServicesResponse {
	out := ServicesResponse{Services: []health.ServiceStatus{}, Routes: []gateway.RouteInfo{}}
	all := summaries(opt)
	for _, s := range all {
		out.Totals.Services++
		out.Totals.Instances += s.Total
		out.Totals.InRotation += s.Healthy
	}
	page := filter(all, q)
	out.Page = Page{Matched: len(page), Query: q.search, Offset: q.offset, Limit: q.limit}
	page = page[min(q.offset, len(page)):]
	if q.limit > 0 && len(page) > q.limit {
		page = page[:q.limit]
		next := q.offset + q.limit
		out.Page.NextOffset = &next
	}
	switch {
	case q.summary:
		out.Services = append(out.Services, page...)
	case q.selectsAll() && opt.Services != nil:
		out.Services = withTotals(opt.Services())
	case len(page) > 0:
		out.Services = withTotals(detail(opt, page))
	}
	if opt.Routes != nil {
		out.Routes = opt.Routes()
		if !q.selectsAll() {
			listed, known := make(map[string]bool, len(page)), make(map[string]bool, len(all))
			for _, s := range page {
				listed[s.Name] = true
			}
			for _, s := range all {
				known[s.Name] = true
			}
			var kept []gateway.RouteInfo // a new slice: the caller's is not ours to change
			for _, r := range out.Routes {
				if listed[r.Service] || !known[r.Service] {
					kept = append(kept, r)
				}
			}
			out.Routes = append([]gateway.RouteInfo{}, kept...)
		}
	}
	out.Balancing = balancing(opt, q, page)
	if opt.Discovery != nil {
		out.Discovery = discoveryView(opt)
	}
	return out
}

// balancing is Options.Balance for the listed services (every one when q
// selects all); never nil.
func balancing(opt Options, q servicesQuery, page []health.ServiceStatus) []gateway.BalanceInfo {
	out := []gateway.BalanceInfo{}
	if opt.Balance == nil {
		return out
	}
	all := opt.Balance()
	if q.selectsAll() {
		return append(out, all...)
	}
	listed := make(map[string]bool, len(page))
	for _, s := range page {
		listed[s.Name] = true
	}
	for _, b := range all {
		if listed[b.Service] {
			out = append(out, b)
		}
	}
	return out
}

// summaries lists every service without instances, from Options.Summaries
// or, when that is nil, from Options.Services.
func summaries(opt Options) []health.ServiceStatus {
	if opt.Summaries != nil {
		return opt.Summaries()
	}
	if opt.Services == nil {
		return nil
	}
	all := opt.Services()
	out := make([]health.ServiceStatus, len(all))
	for i, s := range all {
		out[i] = health.ServiceStatus{Name: s.Name, Healthy: s.Healthy, Total: s.Total, Panic: s.Panic}
		if out[i].Total == 0 {
			out[i].Total = len(s.Instances)
		}
	}
	return out
}

// detail returns the listed services with their instances.
func detail(opt Options, page []health.ServiceStatus) []health.ServiceStatus {
	names := make([]string, len(page))
	for i, s := range page {
		names[i] = s.Name
	}
	if opt.ServicesNamed != nil {
		return opt.ServicesNamed(names...)
	}
	if opt.Services == nil {
		return nil
	}
	var out []health.ServiceStatus
	for _, s := range opt.Services() {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out
}

// filter keeps the services q selects by name, in their order.
func filter(all []health.ServiceStatus, q servicesQuery) []health.ServiceStatus {
	if len(q.names) == 0 && q.search == "" {
		return all
	}
	search := strings.ToLower(q.search)
	names := make(map[string]bool, len(q.names))
	for _, n := range q.names {
		names[n] = true
	}
	out := make([]health.ServiceStatus, 0, len(q.names))
	for _, s := range all {
		if len(names) > 0 && !names[s.Name] {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(s.Name), search) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// withTotals fills Total where a caller left it unset.
func withTotals(ss []health.ServiceStatus) []health.ServiceStatus {
	for i := range ss {
		if ss[i].Total == 0 {
			ss[i].Total = len(ss[i].Instances)
		}
	}
	return ss
}

func discoveryView(opt Options) DiscoveryView {
	st := opt.Discovery()
	d := DiscoveryView{Provider: st.Provider, LastError: st.LastError, Stale: st.LastError != ""}
	if !st.LastSuccess.IsZero() {
		t := st.LastSuccess
		d.LastSuccess = &t
		d.AgeSeconds = time.Since(t).Round(time.Millisecond).Seconds()
	}
	if !st.ErrorSince.IsZero() {
		t := st.ErrorSince
		d.ErrorSince = &t
	}
	return d
}
