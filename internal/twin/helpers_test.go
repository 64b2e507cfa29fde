package twin_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The load and the views of the gateway the twin test reads.

// result is one request of the load.
type result struct {
	start   time.Time
	backend string // who answered
	err     string // "" when the answer was a 200 from a backend
}

// load sends GET requests from several goroutines until stopped, or
// until it has sent max requests or run for maxTime.
type load struct {
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	results []result
}

func startLoad(client *http.Client, url string, workers, max int, maxTime time.Duration) *load {
	l := &load{quit: make(chan struct{})}
	deadline := time.Now().Add(maxTime)
	for range workers {
		l.wg.Go(func() {
			// Paced, so that the gateway's span queue is not flooded.
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				select {
				case <-l.quit:
					return
				case <-tick.C:
				}
				r := result{start: time.Now()}
				name, err := get(client, url)
				if err != nil {
					r.err = err.Error()
				}
				r.backend = name
				l.mu.Lock()
				l.results = append(l.results, r)
				n := len(l.results)
				l.mu.Unlock()
				if n >= max {
					return
				}
			}
		})
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

// answeredBy counts the answers from backend so far.
func (l *load) answeredBy(backend string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.err == "" && r.backend == backend {
			n++
		}
	}
	return n
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

type instance struct {
	ID       string `json:"id"`
	Routable bool   `json:"routable"`
}

// webInstances returns the instances of service web in the admin API.
func webInstances(client *http.Client, admin string) ([]instance, error) {
	resp, err := client.Get(admin + "/api/v1/services")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Services []struct {
			Name      string     `json:"name"`
			Instances []instance `json:"instances"`
		} `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	for _, s := range body.Services {
		if s.Name == "web" {
			return s.Instances, nil
		}
	}
	return nil, nil
}

// upstreamAttempts sums switchyard_upstream_attempts_total over every
// outcome for the instance whose id ends in /serviceID.
func upstreamAttempts(client *http.Client, admin, serviceID string) (int, error) {
	resp, err := client.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	line := regexp.MustCompile(`^switchyard_upstream_attempts_total\{.*instance="[^"]*/` + regexp.QuoteMeta(serviceID) + `".*\} ([0-9.e+]+)$`)
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("metrics line %q: %v", sc.Text(), err)
			}
			total += int(v)
		}
	}
	return total, sc.Err()
}

// flagValue returns the value of --name in args ("true" for a flag
// without a value).
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			return v
		}
		if a == name {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				return args[i+1]
			}
			return "true"
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
