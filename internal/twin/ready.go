package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Readiness bounds: how long each program may take from start to ready.
const (
	consulReadyTimeout = 30 * time.Second
	jaegerReadyTimeout = 60 * time.Second
	otherReadyTimeout  = 30 * time.Second
	pollInterval       = 50 * time.Millisecond
)

// readyCheck returns nil once s is ready, or an error saying what is not
// ready yet.
type readyCheck func(ctx context.Context) error

// readiness returns the check of s and how long it may take.
func (t *Topology) readiness(s *Service) (readyCheck, time.Duration) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(ctx context.Context, url string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, strings.TrimSpace(string(b)), err
	}
	dial := func(ctx context.Context, addrs ...string) error {
		for _, a := range addrs {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", a)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	}
	switch s.Program {
	case programConsul:
		// Like the compose healthcheck (raft list-peers): a leader is
		// elected, and the agent's own node is in the catalogue, so
		// registrations are accepted and synced at once.
		base := "http://" + t.Addr(s.Name, 8500)
		return func(ctx context.Context) error {
			code, leader, err := get(ctx, base+"/v1/status/leader")
			if err != nil || code != http.StatusOK || leader == "" || leader == `""` {
				return fmt.Errorf("no leader yet (%d %q %v)", code, leader, err)
			}
			code, nodes, err := get(ctx, base+"/v1/catalog/nodes")
			if err != nil || code != http.StatusOK || !strings.Contains(nodes, `"`+s.Name+`"`) {
				return fmt.Errorf("node %s not in the catalogue yet (%d %v)", s.Name, code, err)
			}
			return nil
		}, consulReadyTimeout
	case programJaeger:
		// Like the compose healthcheck (the admin port answers 200), plus
		// the query API and both OTLP receivers accepting connections.
		health := "http://" + t.Addr(s.Name, 14269) + "/status"
		query := "http://" + t.Addr(s.Name, 16686) + "/api/services"
		return func(ctx context.Context) error {
			code, body, err := get(ctx, health)
			var st struct {
				Healthy bool `json:"healthy"`
			}
			if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || !st.Healthy {
				return fmt.Errorf("health check: %d %q %v", code, body, err)
			}
			if code, _, err := get(ctx, query); err != nil || code != http.StatusOK {
				return fmt.Errorf("query API: %d %v", code, err)
			}
			return dial(ctx, t.Addr(s.Name, 4317), t.Addr(s.Name, 4318))
		}, jaegerReadyTimeout
	}
	// A program of this module: every port it publishes accepts
	// connections, and the gateway's /readyz answers 200 (a route has a
	// healthy instance), as `curl localhost:9901/readyz` in docs/try-it.md.
	var addrs []string
	for _, m := range t.ports {
		if m.Service == s.Name && m.Published != 0 {
			addrs = append(addrs, m.Addr())
		}
	}
	admin := s.env["SWITCHYARD_ADMIN_LISTEN"]
	return func(ctx context.Context) error {
		if err := dial(ctx, addrs...); err != nil {
			return err
		}
		if s.Program == "switchyard" && admin != "" {
			if code, body, err := get(ctx, "http://"+admin+"/readyz"); err != nil || code != http.StatusOK {
				return fmt.Errorf("/readyz: %d %q %v", code, body, err)
			}
		}
		return nil
	}, otherReadyTimeout
}

// waitReady polls check until it passes, p exits, ctx ends or timeout
// passes.
func waitReady(ctx context.Context, p *process, check readyCheck, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready (%v)", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s (%v); last check: %v", timeout, ctx.Err(), err)
		case <-ticker.C:
		}
	}
}
