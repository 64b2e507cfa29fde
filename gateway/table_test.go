package gateway

import (
	"testing"

	"github.com/switchyard-gw/switchyard/config"
)

func TestRouteMatching(t *testing.T) {
	svc := func(name string) *service { return &service{name: name} }
	tbl := newTable([]config.Route{
		{PathPrefix: "/", Service: "root"},
		{PathPrefix: "/api", Service: "api"},
		{PathPrefix: "/api/v2/", Service: "v2"},
		{Host: "Admin.Example.com", PathPrefix: "/", Service: "admin"},
		{PathPrefix: "/api", Service: "shadowed"}, // same match as an earlier route
	}, svc)
	cases := []struct {
		name, host, path, want string
	}{
		{"the root prefix catches every path", "x", "/anything", "root"},
		{"a prefix matches itself", "x", "/api", "api"},
		{"a prefix matches below itself", "x", "/api/users", "api"},
		{"a prefix does not match a longer segment", "x", "/apix", "root"},
		{"the longest prefix wins", "x", "/api/v2/items", "v2"},
		{"a prefix with trailing slash needs the slash", "x", "/api/v2", "api"},
		{"a host route wins over a host-less one", "admin.example.com", "/api", "admin"},
		{"host matching ignores case and port", "ADMIN.example.com:8080", "/", "admin"},
		{"another host falls through to host-less routes", "other.example.com", "/", "root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tbl.match(c.host, c.path)
			if r == nil {
				t.Fatalf("no match for %s%s", c.host, c.path)
			}
			if r.svc.name != c.want {
				t.Fatalf("matched %s, want %s", r.svc.name, c.want)
			}
		})
	}
}

func TestNoRouteMatchesWithoutACatchAll(t *testing.T) {
	tbl := newTable([]config.Route{{PathPrefix: "/api", Service: "api"}}, func(n string) *service { return &service{name: n} })
	if r := tbl.match("x", "/other"); r != nil {
		t.Fatalf("matched %s, want none", r.svc.name)
	}
}

func TestStripPrefix(t *testing.T) {
	cases := []struct{ prefix, path, want string }{
		{"/api", "/api/users", "/users"},
		{"/api", "/api", "/"},
		{"/api/", "/api/users", "/users"},
		{"/", "/users", "/users"},
	}
	for _, c := range cases {
		if got := stripPrefix(c.prefix, c.path); got != c.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", c.prefix, c.path, got, c.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "/"},
		{"/a/../b", "/b"},
		{"//admin", "/admin"},
		{"/public/../admin", "/admin"},
		{"/a/b/", "/a/b/"},
		{"/a/./b", "/a/b"},
		{"/..", "/"},
	}
	for _, c := range cases {
		if got := cleanPath(c.in); got != c.want {
			t.Errorf("cleanPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStripPort(t *testing.T) {
	cases := map[string]string{
		"example.com":      "example.com",
		"example.com:8080": "example.com",
		"[::1]:8080":       "::1",
		"[::1]":            "[::1]",
		"::1":              "::1",
		"10.0.0.1:80":      "10.0.0.1",
	}
	for in, want := range cases {
		if got := stripPort(in); got != want {
			t.Errorf("stripPort(%q) = %q, want %q", in, got, want)
		}
	}
}
