package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// measure runs one target at one connection count: a fresh proxy process
// (so VmHWM is the peak of this run), a check that it balances over every
// backend, a warm-up, then the measured wrk run with CPU sampled around it.
func (b *bench) measure(ctx context.Context, t target, conns int) (sample, error) {
	url := "http://" + b.backendAddrs[0] + "/"
	var p *proc
	if t.start != nil {
		listen, err := freeAddr()
		if err != nil {
			return sample{}, err
		}
		if p, err = t.start(b, listen); err != nil {
			return sample{}, err
		}
		defer b.procs.stop(p)
		url = "http://" + listen + "/"
		if err := waitBalanced(ctx, url, len(b.backendAddrs), p); err != nil {
			return sample{}, err
		}
	}
	w := wrkRun{wrk: b.cfg.wrk, script: b.script, cpu: b.cfg.loadCPU, threads: b.cfg.wrkThreads, conns: conns, url: url}
	if b.cfg.warmup > 0 {
		w.duration = b.cfg.warmup
		if _, err := w.run(ctx, nil); err != nil {
			return sample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	w.duration = b.cfg.duration
	var before cpuSample
	if p != nil {
		if p.exited() {
			return sample{}, fmt.Errorf("%s exited during warm-up: %s", t.name, p.logTail())
		}
		before = sampleCPU(p.pid())
	}
	r, err := w.run(ctx, b.raw)
	if err != nil {
		return sample{}, err
	}
	s := sample{ok: true, rps: r.rps(), p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests}
	if p != nil {
		if p.exited() {
			return sample{}, fmt.Errorf("%s exited during the run: %s", t.name, p.logTail())
		}
		cpu := cpuSince(before, sampleCPU(p.pid()))
		s.proxy = true
		s.cpuPerReq = cpu / time.Duration(r.requests)
		s.rssKiB = peakRSS(p.pid())
	}
	return s, nil
}

// waitBalanced polls url until responses from want distinct backends came
// back (bodies "ok1", "ok2", ...), so a proxy is measured only once its
// round-robin covers every backend. Gives up after 30 seconds or when p
// exits.
func waitBalanced(ctx context.Context, url string, want int, p *proc) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for len(seen) < want {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited at start (%v):\n%s", p.name, p.err, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving every backend after 30s (saw %d of %d; last: %s)", url, len(seen), want, last)
		}
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		b := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(b, "ok") {
			seen[b] = true
			continue
		}
		last = fmt.Sprintf("%d %q", resp.StatusCode, b)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
