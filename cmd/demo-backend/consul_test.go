package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestDeriveAdvertise(t *testing.T) {
	hostname := func() (string, error) { return "box1", nil }
	tests := []struct {
		listen string
		port   int
		want   string
	}{
		{"0.0.0.0:9001", 9001, "box1:9001"},
		{":9001", 9001, "box1:9001"},
		{"[::]:9001", 9001, "box1:9001"},
		{"127.0.0.1:9001", 9001, "127.0.0.1:9001"},
		{"10.1.2.3:80", 80, "10.1.2.3:80"},
		{"[::1]:9001", 9001, "[::1]:9001"},
		{"backend-a:9001", 9001, "backend-a:9001"},
		{"0.0.0.0:0", 43210, "box1:43210"},     // port picked by the kernel
		{"localhost:http", 80, "localhost:80"}, // named port
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			got, err := deriveAdvertise(tt.listen, tt.port, hostname)
			if err != nil || got != tt.want {
				t.Errorf("deriveAdvertise(%q, %d) = %q, %v; want %q", tt.listen, tt.port, got, err, tt.want)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		if _, err := deriveAdvertise("no-port", 9001, hostname); err == nil {
			t.Error("listen address without port: want error")
		}
		failing := func() (string, error) { return "", errors.New("no hostname") }
		if _, err := deriveAdvertise("0.0.0.0:9001", 9001, failing); err == nil {
			t.Error("hostname failure: want error")
		}
	})
}

func TestServiceRegistration(t *testing.T) {
	reg, err := serviceRegistration("demo", "demo-blue", "box1:9001", " switchyard.enable=true, ,b ", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID != "demo-blue" || reg.Name != "demo" || reg.Address != "box1" || reg.Port != 9001 {
		t.Errorf("registration = %+v, want demo-blue/demo at box1:9001", reg)
	}
	if want := []string{"switchyard.enable=true", "b"}; !slices.Equal(reg.Tags, want) {
		t.Errorf("tags = %q, want %q", reg.Tags, want)
	}
	c := reg.Check
	if c.HTTP != "http://box1:9001/health" || c.Interval != "2s" || c.DeregisterCriticalServiceAfter != "1m0s" {
		t.Errorf("check = %+v, want HTTP http://box1:9001/health every 2s, deregistered after 1m", c)
	}

	for _, bad := range []string{"box1", "box1:http", "box1:0", ":9001"} {
		if _, err := serviceRegistration("demo", "demo-blue", bad, "", time.Second); err == nil {
			t.Errorf("advertise %q: want error", bad)
		}
	}
}

// fakeConsul is a Consul agent API stub whose first failFirst registration
// attempts fail.
type fakeConsul struct {
	failFirst int
	attempted chan struct{} // receives a value per registration attempt, if not full

	mu           sync.Mutex
	attempts     int
	registered   *api.AgentServiceRegistration
	deregistered []string
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v1/agent/service/register":
		f.attempts++
		select {
		case f.attempted <- struct{}{}:
		default:
		}
		if f.attempts <= f.failFirst {
			http.Error(w, "agent not ready", http.StatusInternalServerError)
			return
		}
		var reg api.AgentServiceRegistration
		if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.registered = &reg
	case r.Method == http.MethodPut && len(r.URL.Path) > len("/v1/agent/service/deregister/"):
		f.deregistered = append(f.deregistered, r.URL.Path[len("/v1/agent/service/deregister/"):])
	default:
		http.NotFound(w, r)
	}
}

func testRegistrar(t *testing.T, consul *fakeConsul, minBackoff time.Duration) *registrar {
	t.Helper()
	srv := httptest.NewServer(consul)
	t.Cleanup(srv.Close)
	client, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := serviceRegistration("demo", "demo-blue", "box1:9001", "switchyard.enable=true", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistrar(client, svc, slog.New(slog.NewTextHandler(t.Output(), nil)))
	r.minBackoff, r.maxBackoff = minBackoff, minBackoff
	return r
}

func TestRegisterRetriesThenDeregisters(t *testing.T) {
	consul := &fakeConsul{failFirst: 2}
	r := testRegistrar(t, consul, time.Millisecond)

	if !r.register(t.Context()) {
		t.Fatal("register = false, want true")
	}
	consul.mu.Lock()
	attempts, got := consul.attempts, consul.registered
	consul.mu.Unlock()
	if attempts != 3 {
		t.Errorf("attempts = %d, want 3", attempts)
	}
	if got == nil || got.ID != "demo-blue" || got.Name != "demo" || got.Port != 9001 || got.Check == nil || got.Check.HTTP != "http://box1:9001/health" {
		t.Errorf("registered %+v, want demo-blue with an HTTP check", got)
	}

	if err := r.deregister(t.Context()); err != nil {
		t.Fatal(err)
	}
	consul.mu.Lock()
	defer consul.mu.Unlock()
	if !slices.Equal(consul.deregistered, []string{"demo-blue"}) {
		t.Errorf("deregistered %q, want [demo-blue]", consul.deregistered)
	}
}

func TestRegisterStopsOnCancel(t *testing.T) {
	consul := &fakeConsul{failFirst: 1 << 30, attempted: make(chan struct{}, 1)}
	r := testRegistrar(t, consul, time.Hour) // it waits in backoff after the first failure

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	result := make(chan bool, 1)
	go func() { result <- r.register(ctx) }()

	<-consul.attempted
	cancel()
	select {
	case ok := <-result:
		if ok {
			t.Error("register = true, want false after cancellation")
		}
	case <-time.After(10 * time.Second): // failure guard, not synchronisation
		t.Fatal("register did not return after cancellation")
	}
}
