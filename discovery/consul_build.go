package discovery

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/config"
)

// This file holds the pure half of the Consul source: turning what Consul
// answered into discovery values. Nothing here talks to Consul, logs or
// keeps state; problems come back as warnings for the caller to log.

// consulTags is what a service's tags ask of Switchyard.
type consulTags struct {
	// Enabled is true when <prefix>.enable=true: the service is watched and
	// routed without any configuration.
	Enabled bool
	// Route is the route the tags ask for; meaningful only when Enabled.
	Route config.Route
	// Health holds the <prefix>.health.* settings; nil when there are none.
	Health *config.HealthOverride
	// Upstream holds the <prefix>.protocol and <prefix>.tls.* settings.
	Upstream config.Upstream
	// LB holds <prefix>.lb.policy; empty when not set.
	LB config.LB
}

// parseTags reads the <prefix>.* tags of service name. tags is the union of
// the tags of all its instances, as the catalog reports it. Invalid values
// and unknown keys are reported as warnings and otherwise ignored, so a typo
// in one tag never takes a service down. When instances disagree on a key
// (a rolling change of tags), the value that sorts first wins and a warning
// says so: the choice is deterministic, whatever order Consul answers in.
func parseTags(prefix, name string, tags []string) (consulTags, []string) {
	out := consulTags{Route: config.Route{PathPrefix: "/" + name, Service: name}}
	var warns []string
	warn := func(format string, args ...any) {
		warns = append(warns, fmt.Sprintf("service %q: ", name)+fmt.Sprintf(format, args...))
	}
	values, keys := groupTags(prefix, tags, warn)
	var h config.HealthOverride
	for _, key := range keys {
		vals := values[key]
		value, tag := vals[0], prefix+"."+key+"="+vals[0]
		if len(vals) > 1 {
			warn("instances disagree on %s.%s (%s); using %q", prefix, key, strings.Join(vals, ", "), value)
		}
		err := setUpstreamTag(&out.Upstream, &h, key, value)
		if errors.Is(err, errUnknownTag) {
			if hkey, ok := strings.CutPrefix(key, "health."); ok {
				err = setHealthTag(&h, hkey, value)
			} else {
				err = setRouteTag(&out, key, value)
			}
		}
		switch {
		case errors.Is(err, errUnknownTag):
			warn("tag %q ignored: unknown key %s.%s", tag, prefix, key)
		case err != nil:
			warn("tag %q ignored: %s", tag, err)
		}
	}
	if h != (config.HealthOverride{}) {
		out.Health = &h
	}
	return out, warns
}

// groupTags collects the <prefix>.key=value tags: for every key (after the
// prefix) its distinct values, sorted, and the keys, sorted. A tag with the
// prefix but no "=" is reported through warn.
func groupTags(prefix string, tags []string, warn func(string, ...any)) (map[string][]string, []string) {
	values := map[string][]string{}
	for _, tag := range tags {
		rest, ok := strings.CutPrefix(tag, prefix+".")
		if !ok {
			continue
		}
		key, value, ok := strings.Cut(rest, "=")
		if !ok {
			warn("tag %q ignored: want %s.<key>=<value>", tag, prefix)
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == weightTag {
			continue // per instance, read by consulWeight: instances may differ
		}
		if !slices.Contains(values[key], value) {
			values[key] = append(values[key], value)
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		slices.Sort(values[k])
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return values, keys
}

// errUnknownTag is returned by the tag setters for a key they do not know.
var errUnknownTag = errors.New("unknown tag key")

// tagBool reads a true/false tag value.
func tagBool(value string) (bool, error) {
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// setRouteTag applies one of enable, path, host, strip_prefix and lb.policy to out.
// An invalid value leaves out unchanged; the error says what is wanted.
func setRouteTag(out *consulTags, key, value string) error {
	switch key {
	case "enable":
		b, err := tagBool(value)
		if err != nil {
			return err
		}
		out.Enabled = b
	case "path":
		if !strings.HasPrefix(value, "/") || strings.ContainsAny(value, " ?#") {
			return errors.New("want a path prefix starting with /")
		}
		out.Route.PathPrefix = value
	case "host":
		if value == "" || strings.ContainsAny(value, "/ ") {
			return errors.New("want a plain host name")
		}
		out.Route.Host = value
	case "strip_prefix":
		b, err := tagBool(value)
		if err != nil {
			return err
		}
		out.Route.StripPrefix = b
	case "lb.policy":
		if err := config.CheckPolicy(value); err != nil {
			return err
		}
		out.LB.Policy = value
	default:
		return errUnknownTag
	}
	return nil
}

// setHealthTag applies one health.<key> tag to h, decoded into its typed
// value with the syntax of the configuration key of the same name. An
// invalid value leaves h unchanged; the error says what is wanted.
func setHealthTag(h *config.HealthOverride, key, value string) error {
	switch key {
	case "path":
		if !strings.HasPrefix(value, "/") {
			return errors.New("want a path starting with /")
		}
		h.Path = &value
	case "interval", "timeout":
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration such as 5s")
		}
		if key == "interval" {
			h.Interval = &d
		} else {
			h.Timeout = &d
		}
	case "healthy_threshold", "unhealthy_threshold":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			return errors.New("want a whole number of at least 1")
		}
		if key == "healthy_threshold" {
			h.HealthyThreshold = &n
		} else {
			h.UnhealthyThreshold = &n
		}
	case "expected_status":
		set, err := config.ParseStatusSet(value)
		if err != nil {
			return err
		}
		h.ExpectedStatus = &set
	case "jitter":
		j, err := config.ParseJitter(value)
		if err != nil {
			return err
		}
		h.Jitter = &j
	case "slow_start":
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return errors.New("want a duration such as 30s (0 turns slow start off)")
		}
		h.SlowStart = &d
	default:
		return errUnknownTag
	}
	return nil
}

// mergeHealth combines the health section of the config file with the one
// from tags, field by field: the config file wins, because it is the
// operator's explicit word, and tags fill what it leaves unset. It returns
// nil when neither sets anything. The result shares pointers with its
// arguments, which are never modified.
func mergeHealth(file, tags *config.HealthOverride) *config.HealthOverride {
	return file.Over(tags)
}

// buildService assembles one service of a snapshot. Only opted-in services
// ask for a route; services that are watched because the config file names
// them are routed by the config file alone.
func buildService(name string, tags consulTags, instances []Instance, file *config.HealthOverride) Service {
	svc := Service{Name: name, Instances: instances}
	if tags.Enabled {
		svc.Routes = []config.Route{tags.Route}
		svc.Health = mergeHealth(file, tags.Health)
		svc.Upstream = tags.Upstream
		svc.LB = tags.LB // the config file's services[].lb is applied over it by the caller
	} else {
		svc.Health = file
	}
	return svc
}

// consulInstances turns the entries of /v1/health/service/<name> into
// instances sorted by ID. The ID is "node/service-id", stable for as long as
// the registration lives, so health state survives updates. The address is
// the service address, or the node address when the service has none.
// Entries without a usable address or port are left out with a warning.
// Proxies and gateways (Kind connect-proxy, mesh-gateway, ...) are left out
// silently: a Connect sidecar copies its service's tags and listens for
// mTLS, so it is never a plain instance to route to or probe. Weights come
// from consulWeight; prefix is the tag prefix.
func consulInstances(prefix string, entries []*api.ServiceEntry) ([]Instance, []string) {
	out := make([]Instance, 0, len(entries))
	var warns []string
	for _, e := range entries {
		if e == nil || e.Node == nil || e.Service == nil || e.Service.Kind != api.ServiceKindTypical {
			continue
		}
		id := e.Node.Node + "/" + e.Service.ID
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		switch {
		case host == "":
			warns = append(warns, fmt.Sprintf("instance %q of service %q skipped: no service or node address", id, e.Service.Service))
			continue
		case e.Service.Port <= 0 || e.Service.Port > 65535:
			warns = append(warns, fmt.Sprintf("instance %q of service %q skipped: port %d", id, e.Service.Service, e.Service.Port))
			continue
		}
		reg := registryHealth(e.Checks)
		weight, warn := consulWeight(prefix, e.Service, reg.Status)
		if warn != "" {
			warns = append(warns, warn)
		}
		out = append(out, Instance{
			ID:       id,
			Address:  net.JoinHostPort(host, strconv.Itoa(e.Service.Port)),
			Registry: reg,
			Weight:   weight,
		})
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	out = slices.CompactFunc(out, func(a, b Instance) bool { return a.ID == b.ID })
	return out, warns
}

// registryHealth aggregates the checks of one instance, node checks
// (serfHealth, node maintenance) included, into the worst status. For a
// status other than passing it names the worst check and its output; among
// equally bad checks a node check is named first (it explains every service
// on the node), then the lowest check ID. An instance without checks is
// passing, as Consul treats it.
func registryHealth(checks api.HealthChecks) RegistryHealth {
	var worst *api.HealthCheck
	agentOnly := true
	for _, c := range checks {
		if c == nil || rank(c) == 0 {
			continue
		}
		if c.CheckID != serfHealthCheckID || c.ServiceID != "" {
			agentOnly = false
		}
		if worst == nil || worse(c, worst) {
			worst = c
		}
	}
	if worst == nil {
		return RegistryHealth{Status: StatusPassing}
	}
	name := worst.Name
	if name == "" {
		name = worst.CheckID
	}
	return RegistryHealth{Status: statusOf(worst), Check: name, Output: strings.TrimSpace(worst.Output), AgentOnly: agentOnly}
}

// serfHealthCheckID is the ID of the node check every Consul agent has:
// its gossip liveness as the servers see it.
const serfHealthCheckID = "serfHealth"

// worse reports whether check a should be named rather than b.
func worse(a, b *api.HealthCheck) bool {
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra > rb
	}
	if aNode, bNode := a.ServiceID == "", b.ServiceID == ""; aNode != bNode {
		return aNode
	}
	return a.CheckID < b.CheckID
}

// statusOf maps a check's status to the registry status. Maintenance mode
// is a critical check with a reserved ID; it gets its own status so the
// reason reads "maintenance". Unknown statuses count as critical.
func statusOf(c *api.HealthCheck) string {
	if c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix) || c.Status == api.HealthMaint {
		return StatusMaint
	}
	switch c.Status {
	case api.HealthPassing:
		return StatusPassing
	case api.HealthWarning:
		return StatusWarning
	default:
		return StatusCritical
	}
}

// rank orders statuses from passing (0) to maintenance (3).
func rank(c *api.HealthCheck) int {
	switch statusOf(c) {
	case StatusPassing:
		return 0
	case StatusWarning:
		return 1
	case StatusCritical:
		return 2
	default:
		return 3
	}
}
