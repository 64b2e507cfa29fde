package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// measure runs one target at one connection count: a fresh proxy process
// (so VmHWM is the peak of this run), a check that it balances over every
// backend, a warm-up, then the measured wrk run with CPU sampled around it.
func (b *bench) measure(ctx context.Context, t target, conns int) (sample, error) {
	url := "http://" + b.backendAddrs[0] + "/"
	var p *proc
	if t.start != nil {
		var err error
		if p, url, err = b.startProxy(ctx, t); err != nil {
			return sample{}, err
		}
		defer b.procs.stop(p)
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
	if p == nil {
		return sample{ok: true, rps: r.rps(), p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests}, nil
	}
	return proxySample(t, p, before, r)
}

// proxySample is the sample of the wrk run r through t's proxy p, whose
// CPU was before when the run started.
func proxySample(t target, p *proc, before cpuSample, r wrkResult) (sample, error) {
	if p.exited() {
		return sample{}, fmt.Errorf("%s exited during the run: %s", t.name, p.logTail())
	}
	cpu := cpuSince(before, sampleCPU(p.pid()))
	return sample{ok: true, proxy: true, rps: r.rps(), p50: r.p50, p99: r.p99, errors: r.errors, requests: r.requests,
		cpuPerReq: cpu / time.Duration(r.requests), rssKiB: peakRSS(p.pid())}, nil
}

// measurePair runs targets a and z at the same time at conns connections
// each: two fresh proxies, both pinned to the proxy CPU, each under a wrk
// of its own on the load CPU, warmed up and measured over the same
// seconds. Whatever the host does to that CPU in the meantime (another
// tenant, a frequency step, a cache-hungry neighbour) falls on both, which
// the same CPU time taken a few seconds apart does not ensure. Each
// proxy gets about half the CPU: CPU per request is its own, request
// rates and latencies are those of a shared CPU.
func (b *bench) measurePair(ctx context.Context, a, z target, conns int) (sample, sample, error) {
	ts := [2]target{a, z}
	var ps [2]*proc
	var ws [2]wrkRun
	for i, t := range ts {
		if t.start == nil {
			return sample{}, sample{}, fmt.Errorf("%s: not a proxy", t.name)
		}
		p, url, err := b.startProxy(ctx, t)
		if err != nil {
			return sample{}, sample{}, err
		}
		defer b.procs.stop(p)
		ps[i] = p
		ws[i] = wrkRun{wrk: b.cfg.wrk, script: b.script, cpu: b.cfg.loadCPU, threads: b.cfg.wrkThreads, conns: conns, url: url}
	}
	both := func(d time.Duration, raw io.Writer) ([2]wrkResult, error) {
		var out [2]wrkResult
		var errs [2]error
		var logs [2]bytes.Buffer
		var wg sync.WaitGroup
		for i := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := ws[i]
				w.duration = d
				out[i], errs[i] = w.run(ctx, &logs[i])
			}()
		}
		wg.Wait()
		if raw != nil {
			for i := range logs {
				fmt.Fprintf(raw, "--- %s\n", ts[i].name)
				raw.Write(logs[i].Bytes())
			}
		}
		return out, errors.Join(errs[0], errs[1])
	}
	if b.cfg.warmup > 0 {
		if _, err := both(b.cfg.warmup, nil); err != nil {
			return sample{}, sample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var before [2]cpuSample
	for i, p := range ps {
		if p.exited() {
			return sample{}, sample{}, fmt.Errorf("%s exited during warm-up: %s", ts[i].name, p.logTail())
		}
		before[i] = sampleCPU(p.pid())
	}
	rs, err := both(b.cfg.duration, b.raw)
	if err != nil {
		return sample{}, sample{}, err
	}
	var ss [2]sample
	for i, p := range ps {
		if ss[i], err = proxySample(ts[i], p, before[i], rs[i]); err != nil {
			return sample{}, sample{}, err
		}
	}
	return ss[0], ss[1], nil
}

// startProxy starts t on free addresses and waits until it serves every
// backend; it returns the process and the URL it serves. A free address is
// one that was free a moment ago: when the proxy could not bind one of its
// own (another process took it as a connection's local port meanwhile,
// likelier with two proxies running), it starts again on others, up to
// three times.
func (b *bench) startProxy(ctx context.Context, t target) (*proc, string, error) {
	for try := 1; ; try++ {
		listen, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		p, err := t.start(b, listen)
		if err != nil {
			return nil, "", err
		}
		url := "http://" + listen + "/"
		err = waitBalanced(ctx, url, len(b.backendAddrs), p)
		if err == nil {
			return p, url, nil
		}
		bindFailed := p.exited() && strings.Contains(p.logTail(), "address already in use")
		b.procs.stop(p)
		if try == 3 || !bindFailed {
			return nil, "", err
		}
	}
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
