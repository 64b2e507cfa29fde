package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// deregisterCriticalAfter is how long Consul keeps this backend once its
// health check is critical, so a backend killed without deregistering
// (SIGKILL, crash) does not linger in the catalogue.
const deregisterCriticalAfter = time.Minute

// registrar registers one service instance with a Consul agent and removes
// it again.
type registrar struct {
	agent   *api.Agent
	service *api.AgentServiceRegistration
	log     *slog.Logger

	// minBackoff and maxBackoff bound the wait between failed attempts,
	// which doubles after each failure.
	minBackoff, maxBackoff time.Duration
}

// newRegistrar returns a registrar for service using client's agent.
func newRegistrar(client *api.Client, service *api.AgentServiceRegistration, log *slog.Logger) *registrar {
	return &registrar{
		agent:      client.Agent(),
		service:    service,
		log:        log.With("service", service.Name, "id", service.ID),
		minBackoff: 500 * time.Millisecond,
		maxBackoff: 10 * time.Second,
	}
}

// consulClient returns a Consul client configured from the environment
// (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...); a non-empty addr overrides
// the address.
func consulClient(addr string) (*api.Client, error) {
	conf := api.DefaultConfig()
	if addr != "" {
		conf.Address = addr
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("consul client for %q: %w", conf.Address, err)
	}
	return client, nil
}

// register registers the service, retrying with exponential backoff until
// it succeeds or ctx is done, since Consul may start after the backend.
// It reports whether the service was registered.
//
// If ctx ends while a request is in flight, Consul may have registered the
// service anyway; its check then goes critical once the backend stops and
// Consul removes it after deregisterCriticalAfter.
func (r *registrar) register(ctx context.Context) bool {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	backoff := r.minBackoff
	for attempt := 1; ; attempt++ {
		err := r.agent.ServiceRegisterOpts(r.service, opts)
		if err == nil {
			r.log.Info("registered in consul", "address", r.service.Address, "port", r.service.Port, "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.log.Warn("consul registration failed, retrying", "attempt", attempt, "retry_in", backoff, "err", err)
		if sleepCtx(ctx, backoff) != nil {
			return false
		}
		backoff = min(backoff*2, r.maxBackoff)
	}
}

// deregister removes the service from the agent.
func (r *registrar) deregister(ctx context.Context) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := r.agent.ServiceDeregisterOpts(r.service.ID, q); err != nil {
		return fmt.Errorf("deregistering %s from consul: %w", r.service.ID, err)
	}
	r.log.Info("deregistered from consul")
	return nil
}

// serviceRegistration builds the registration of service instance id,
// reachable at advertise (host:port), with the given comma-separated tags
// and an HTTP check of http://<advertise>/health every interval.
func serviceRegistration(service, id, advertise, tags string, interval time.Duration) (*api.AgentServiceRegistration, error) {
	host, portStr, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", advertise, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("advertise address %q: port must be a number between 1 and 65535", advertise)
	}
	if host == "" {
		return nil, fmt.Errorf("advertise address %q: missing host", advertise)
	}
	return &api.AgentServiceRegistration{
		ID:      id,
		Name:    service,
		Address: host,
		Port:    port,
		Tags:    splitTags(tags),
		Check: &api.AgentServiceCheck{
			Name:     service + " /health",
			HTTP:     "http://" + net.JoinHostPort(host, portStr) + "/health",
			Interval: interval.String(),
			// A check may take at most one interval, so checks never overlap
			// (Consul's default timeout, 10s, exceeds short intervals).
			Timeout:                        interval.String(),
			DeregisterCriticalServiceAfter: deregisterCriticalAfter.String(),
		},
	}, nil
}

// splitTags splits a comma-separated tag list, dropping blanks.
func splitTags(s string) []string {
	var tags []string
	for tag := range strings.SplitSeq(s, ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			tags = append(tags, tag)
		}
	}
	return tags
}

// deriveAdvertise returns the host:port other machines should use to reach
// a server listening on listen whose listener is bound to port. The host
// comes from listen, except that an unspecified host ("", 0.0.0.0, ::) is
// replaced by hostname(); the port is always the bound one, so ":0" and
// named ports give a usable number.
func deriveAdvertise(listen string, port int, hostname func() (string, error)) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("deriving advertise address from listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = hostname(); err != nil {
			return "", fmt.Errorf("deriving advertise address from listen address %q: %w", listen, err)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
