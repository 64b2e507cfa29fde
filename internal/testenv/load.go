package testenv

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Request is one request of a Load.
type Request struct {
	Start   time.Time
	Target  string // the URL it was sent to
	Backend string // the body of a 200 answer: who answered
	Err     string // "" when the answer was a 200
}

// LoadOptions shape a Load. Zero Max means no limit on the count.
type LoadOptions struct {
	URLs    []string
	Workers int           // goroutines per URL
	Pace    time.Duration // each worker sends at most one request per Pace
	Max     int           // stop once this many requests were sent (0: no limit)
	MaxTime time.Duration // stop after this long
}

// Load is steady traffic from a test: paced GET requests from several
// goroutines, recorded for the test to read. Safe for concurrent use.
type Load struct {
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu       sync.Mutex
	requests []Request
}

// StartLoad starts o's workers; call Stop (a deferred Stop is harmless
// after another) to end them.
func StartLoad(client *http.Client, o LoadOptions) *Load {
	l := &Load{quit: make(chan struct{})}
	deadline := time.Now().Add(o.MaxTime)
	for _, url := range o.URLs {
		for range o.Workers {
			l.wg.Go(func() { l.work(client, url, o.Pace, o.Max, deadline) })
		}
	}
	return l
}

func (l *Load) work(client *http.Client, url string, pace time.Duration, max int, deadline time.Time) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		r := Request{Start: time.Now(), Target: url}
		name, err := GetBody(client, url)
		if err != nil {
			r.Err = err.Error()
		}
		r.Backend = name
		l.mu.Lock()
		l.requests = append(l.requests, r)
		n := len(l.requests)
		l.mu.Unlock()
		if max > 0 && n >= max {
			return
		}
	}
}

// Stop ends the load, waits for its workers and returns every request.
func (l *Load) Stop() []Request {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

// Since counts the answers per backend to requests started after t.
func (l *Load) Since(t time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range l.requests {
		if r.Err == "" && r.Start.After(t) {
			out[r.Backend]++
		}
	}
	return out
}

// AnsweredBy counts the answers from backend so far.
func (l *Load) AnsweredBy(backend string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.requests {
		if r.Err == "" && r.Backend == backend {
			n++
		}
	}
	return n
}

// GetBody returns the trimmed body of a 200 answer to GET url; any other
// status is an error that quotes the body.
func GetBody(client *http.Client, url string) (string, error) {
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
