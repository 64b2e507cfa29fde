package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Normalize expands shorthands (backends) and fills derived defaults such as
// instance IDs. It is called by Load before Validate.
func (c *Config) Normalize() error {
	if len(c.Backends) > 0 {
		if len(c.Services) > 0 || len(c.Routes) > 0 {
			return bad("backends", strings.Join(c.Backends, ","), "cannot be combined with services or routes")
		}
		svc := Service{Name: "default"}
		for i, b := range c.Backends {
			addr, err := backendAddress(b)
			if err != nil {
				return bad(fmt.Sprintf("backends[%d]", i), b, "%v", err)
			}
			svc.Instances = append(svc.Instances, Instance{ID: addr, Address: addr})
		}
		c.Services = []Service{svc}
		c.Routes = []Route{{PathPrefix: "/", Service: "default"}}
	}
	for i := range c.Services {
		for j := range c.Services[i].Instances {
			in := &c.Services[i].Instances[j]
			if in.ID == "" {
				in.ID = in.Address
			}
		}
	}
	for i := range c.Routes {
		if c.Routes[i].PathPrefix == "" {
			c.Routes[i].PathPrefix = "/"
		}
	}
	return nil
}

// backendAddress accepts "http://host:port", "host:port" and returns host:port.
func backendAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		if u.Scheme != "http" {
			return "", fmt.Errorf("scheme %q is not supported (use http)", u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return "", errors.New("a path is not supported")
		}
		s = u.Host
	}
	return s, checkHostPort(s)
}
