package gateway

import (
	"cmp"
	"slices"
	"strings"

	"github.com/switchyard-gw/switchyard/config"
)

// route is one compiled routing rule. Immutable.
type route struct {
	host   string // lower-case; empty matches any host
	prefix string
	strip  bool
	svc    *service
	// name is the route's label in traces, metrics and logs: host+prefix.
	name string
}

// table is an immutable, ordered routing table: the first match wins.
type table struct {
	routes []*route
}

// RouteInfo describes a route for the admin API.
type RouteInfo struct {
	Host        string `json:"host,omitempty"`
	PathPrefix  string `json:"path_prefix"`
	Service     string `json:"service"`
	StripPrefix bool   `json:"strip_prefix"`
}

// newTable compiles routes, most specific first: routes with a host before
// routes without, then longer prefixes first, then configuration order.
func newTable(rs []config.Route, svc func(string) *service) *table {
	t := &table{routes: make([]*route, 0, len(rs))}
	seen := map[string]bool{}
	for _, r := range rs {
		host := strings.ToLower(r.Host)
		k := host + "\x00" + r.PathPrefix
		if seen[k] {
			continue // an earlier (config) route with the same match wins
		}
		seen[k] = true
		t.routes = append(t.routes, &route{
			host:   host,
			prefix: r.PathPrefix,
			strip:  r.StripPrefix,
			svc:    svc(r.Service),
			name:   r.Host + r.PathPrefix,
		})
	}
	slices.SortStableFunc(t.routes, func(a, b *route) int {
		if (a.host != "") != (b.host != "") {
			if a.host != "" {
				return -1
			}
			return 1
		}
		return cmp.Compare(len(b.prefix), len(a.prefix))
	})
	return t
}

// match returns the first route for host and the cleaned path, or nil.
func (t *table) match(host, path string) *route {
	host = stripPort(host)
	for _, r := range t.routes {
		if r.host != "" && !strings.EqualFold(r.host, host) {
			continue
		}
		if prefixMatch(r.prefix, path) {
			return r
		}
	}
	return nil
}

// prefixMatch matches on segment boundaries: "/api" matches "/api" and
// "/api/x" but not "/apix"; a prefix ending in "/" matches anything below it.
func prefixMatch(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// stripPrefix removes the route prefix from path, keeping a leading slash.
func stripPrefix(prefix, path string) string {
	p := strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return p
}

// stripPort removes a ":port" suffix without allocating.
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 || (host[0] != '[' && strings.IndexByte(host[:i], ':') >= 0) {
		return host // no port, or the colon belongs to an IPv6 address
	}
	if strings.HasPrefix(host, "[") && i > 0 && host[i-1] == ']' {
		return host[1 : i-1]
	}
	return host[:i]
}

func (t *table) info() []RouteInfo {
	out := make([]RouteInfo, len(t.routes))
	for i, r := range t.routes {
		out[i] = RouteInfo{Host: r.host, PathPrefix: r.prefix, Service: r.svc.name, StripPrefix: r.strip}
	}
	return out
}
