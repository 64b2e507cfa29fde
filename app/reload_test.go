package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func reloadYAML(interval string, backends ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  interval: %s\n  jitter: 0%%\nservices:\n  - name: web\n    instances:\n", interval)
	for _, a := range backends {
		fmt.Fprintf(&b, "      - address: %s\n", a)
	}
	b.WriteString("routes:\n  - path_prefix: /\n    service: web\n")
	return b.String()
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as editors and ConfigMaps do
		t.Fatal(err)
	}
}

func TestFiftyReloadsUnderLoadFailNoRequest(t *testing.T) {
	a1 := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") })
	b1 := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	writeConfig(t, path, reloadYAML("50ms", a1))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.WatchConfig(path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady(t, a)

	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := client.Get("http://" + a.ProxyAddr() + "/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	for i := range 50 {
		body := reloadYAML("50ms", a1)
		if i%2 == 0 {
			body = reloadYAML("60ms", a1, b1) // add an instance and change a health setting
		}
		writeConfig(t, path, body)
		testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("reload %d applied", i+1), func() bool { return a.Reloads() >= int64(i+1) })
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during 50 reloads; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	t.Logf("%d requests during 50 reloads, none failed", sent.Load())

	// An invalid file is rejected with a clear log line; the running
	// configuration stays.
	writeConfig(t, path, strings.Replace(reloadYAML("50ms", a1), "interval: 50ms", "interval: soon", 1))
	testenv.WaitFor(t, 5*time.Second, "rejection logged", func() bool {
		return strings.Contains(logs.String(), "configuration reload rejected") && strings.Contains(logs.String(), `health.interval: invalid value \"soon\"`)
	})
	if code, body := body(t, "http://"+a.ProxyAddr()+"/"); code != 200 {
		t.Fatalf("after a rejected reload: %d %q", code, body)
	}

	// Listener changes are not hot-reloadable, and the log says so.
	writeConfig(t, path, strings.Replace(reloadYAML("50ms", a1), "listen: 127.0.0.1:0\nadmin", "listen: 127.0.0.1:1\nadmin", 1))
	testenv.WaitFor(t, 5*time.Second, "not-reloadable warning", func() bool {
		return strings.Contains(logs.String(), "not hot-reloadable") && strings.Contains(logs.String(), "key=listen")
	})
}

func TestAReloadKeepsTheHealthKeysReadOnlyAtStart(t *testing.T) {
	started := config.Default().Health
	for _, tc := range []struct {
		name  string
		edit  func(h *config.Health)
		fixed []string
	}{
		{"a new interval applies", func(h *config.Health) { h.Interval *= 2 }, nil},
		{"a new merge policy is kept back", func(h *config.Health) { h.Merge = config.MergeConsul }, []string{"health.merge"}},
		{"a new passive threshold is kept back", func(h *config.Health) { h.Passive.ConsecutiveFailures++ }, []string{"health.passive.consecutive_failures"}},
		{"both are kept back while the rest applies", func(h *config.Health) {
			h.Merge, h.Passive.ConsecutiveFailures, h.Interval = config.MergeProbe, 0, h.Interval*3
		}, []string{"health.merge", "health.passive.consecutive_failures"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := started
			tc.edit(&next)
			live, fixed := reloadHealth(started, next)
			if !reflect.DeepEqual(fixed, tc.fixed) {
				t.Fatalf("fixed = %q, want %q", fixed, tc.fixed)
			}
			want := next
			want.Merge, want.Passive.ConsecutiveFailures = started.Merge, started.Passive.ConsecutiveFailures
			if !reflect.DeepEqual(live, want) {
				t.Fatalf("live = %+v, want %+v", live, want)
			}
		})
	}
}
