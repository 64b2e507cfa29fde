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
	switch s.Program {
	case programConsul:
		return t.consulReady(s), consulReadyTimeout
	case programJaeger:
		return t.jaegerReady(s), jaegerReadyTimeout
	default:
		return t.programReady(s), otherReadyTimeout
	}
}

// consulReady is like the compose healthcheck (raft list-peers): a leader
// is elected, and the agent's own node is in the catalogue, so
// registrations are accepted and synced at once.
func (t *Topology) consulReady(s *Service) readyCheck {
	base := "http://" + t.Addr(s.Name, 8500)
	return func(ctx context.Context) error {
		code, leader, err := readyGet(ctx, base+"/v1/status/leader")
		if err != nil || code != http.StatusOK || leader == "" || leader == `""` {
			return fmt.Errorf("no leader yet (%d %q %v)", code, leader, err)
		}
		code, nodes, err := readyGet(ctx, base+"/v1/catalog/nodes")
		if err != nil || code != http.StatusOK || !strings.Contains(nodes, `"`+s.Name+`"`) {
			return fmt.Errorf("node %s not in the catalogue yet (%d %v)", s.Name, code, err)
		}
		return nil
	}
}

// jaegerReady is like the compose healthcheck (the admin port answers
// 200), plus the query API and both OTLP receivers accepting connections.
func (t *Topology) jaegerReady(s *Service) readyCheck {
	health := "http://" + t.Addr(s.Name, 14269) + "/status"
	query := "http://" + t.Addr(s.Name, 16686) + "/api/services"
	return func(ctx context.Context) error {
		code, body, err := readyGet(ctx, health)
		var st struct {
			Healthy bool `json:"healthy"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || !st.Healthy {
			return fmt.Errorf("health check: %d %q %v", code, body, err)
		}
		if code, _, err := readyGet(ctx, query); err != nil || code != http.StatusOK {
			return fmt.Errorf("query API: %d %v", code, err)
		}
		return readyDial(ctx, t.Addr(s.Name, 4317), t.Addr(s.Name, 4318))
	}
}

// programReady is the check of a program of this module: every port it
// publishes accepts connections, and the gateway's /readyz answers 200 (a
// route has a healthy instance), as `curl localhost:9901/readyz` in
// docs/try-it.md.
func (t *Topology) programReady(s *Service) readyCheck {
	var addrs []string
	for _, m := range t.ports {
		if m.Service == s.Name && m.Published != 0 {
			addrs = append(addrs, m.Addr())
		}
	}
	admin := s.env["SWITCHYARD_ADMIN_LISTEN"]
	return func(ctx context.Context) error {
		if err := readyDial(ctx, addrs...); err != nil {
			return err
		}
		if s.Program == "switchyard" && admin != "" {
			if code, body, err := readyGet(ctx, "http://"+admin+"/readyz"); err != nil || code != http.StatusOK {
				return fmt.Errorf("/readyz: %d %q %v", code, body, err)
			}
		}
		return nil
	}
}

// readyGet returns the status and the trimmed body (at most 1 MiB) of url,
// on a connection of its own: a check never reuses a connection to a
// process that has since restarted.
func readyGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// readyDial reports the first of addrs that does not accept a connection.
func readyDial(ctx context.Context, addrs ...string) error {
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
