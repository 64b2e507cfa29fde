package dockertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// result is one request of a load.
type result struct {
	start   time.Time
	target  string // the gateway URL it was sent to
	backend string // who answered
	err     string // "" when the answer was a 200 from a backend
}

// load sends paced GET requests from workers goroutines per URL until
// stopped or until maxTime has passed.
type load struct {
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	results []result
}

func startLoad(client *http.Client, urls []string, workers int, maxTime time.Duration) *load {
	l := &load{quit: make(chan struct{})}
	deadline := time.Now().Add(maxTime)
	for _, url := range urls {
		for range workers {
			l.wg.Go(func() {
				// Paced: steady traffic, not a benchmark on a shared machine.
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for time.Now().Before(deadline) {
					select {
					case <-l.quit:
						return
					case <-tick.C:
					}
					r := result{start: time.Now(), target: url}
					name, err := get(client, url)
					if err != nil {
						r.err = err.Error()
					}
					r.backend = name
					l.mu.Lock()
					l.results = append(l.results, r)
					l.mu.Unlock()
				}
			})
		}
	}
	return l
}

// stop ends the load, waits for it and returns every result.
func (l *load) stop() []result {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.results
}

// since counts the answers per backend to requests started after t.
func (l *load) since(t time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range l.results {
		if r.err == "" && r.start.After(t) {
			out[r.backend]++
		}
	}
	return out
}

// get returns the body of a 200 answer, which names the backend.
func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %q", resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// services is the part of GET /api/v1/services the tests read.
type services struct {
	Services []struct {
		Name      string `json:"name"`
		Instances []struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			Routable bool   `json:"routable"`
		} `json:"instances"`
	} `json:"services"`
	Discovery struct {
		Provider   string  `json:"provider"`
		AgeSeconds float64 `json:"age_seconds"`
		Stale      bool    `json:"stale"`
		LastError  string  `json:"last_error"`
	} `json:"discovery"`
}

func getServices(client *http.Client, admin string) (services, error) {
	var s services
	resp, err := client.Get(admin + "/api/v1/services")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /api/v1/services: %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// routable returns the routable instances of service web as "id@address",
// sorted as the admin API sorts them.
func (s services) routable() []string {
	var out []string
	for _, svc := range s.Services {
		if svc.Name != "web" {
			continue
		}
		for _, in := range svc.Instances {
			if in.Routable {
				out = append(out, in.ID+"@"+in.Address)
			}
		}
	}
	return out
}

// routableByName reports, per demo backend name (backend-N), whether the
// instance web-backend-N is routable; absent names are not registered.
func (s services) routableByName() map[string]bool {
	out := map[string]bool{}
	for _, svc := range s.Services {
		if svc.Name != "web" {
			continue
		}
		for _, in := range svc.Instances {
			if i := strings.LastIndex(in.ID, "web-"); i >= 0 {
				out[in.ID[i+len("web-"):]] = in.Routable
			}
		}
	}
	return out
}
