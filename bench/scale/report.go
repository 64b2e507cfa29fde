package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is what one catalog size measured.
type result struct {
	services     int
	converge     time.Duration
	convergeCost cost // from start to convergence: one full read of everything
	steady       window
	steadyCPU    float64
	rss          int64
	conns        int
	churn        window
	connsChurn   int
	latencies    []latency
	missed       int
	catalogBody  int // bytes of one /v1/catalog/services answer
	breakdown    breakdown
}

// catalogBytes reads /v1/catalog/services once, as a detector does, and
// returns the size of the answer's body.
func catalogBytes(addr string) int {
	resp, err := http.Get("http://" + addr + "/v1/catalog/services?filter=" + `ServiceKind%20%3D%3D%20%22%22`)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return len(b)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func rateStr(req, in, out float64) string {
	return fmt.Sprintf("%.1f req/s, %s/s in, %s/s out", req, bytesStr(in), bytesStr(out))
}

func bytesStr(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// report renders the results as markdown.
func report(rs []result, instances int, rate float64, budget int, summary bool) string {
	detector := "catalog detector on the per-service summary (/v1/internal/ui/services)"
	if summary && budget >= 5 {
		detector = "names and tags on /v1/catalog/services, instance changes on the per-service summary (/v1/internal/ui/services)"
	}
	if !summary {
		detector = "catalog detector on /v1/catalog/services (-summary=false)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Consul discovery at catalog scale\n\n")
	fmt.Fprintf(&b, "`make bench-scale` (`go run ./bench/scale`), %s, %s, GOMAXPROCS %d, %d instances per service (one service check each), "+
		"max_connections %d, %s, churn %.0f changes/s (registration, deregistration, check status, tag change in turn). "+
		"Figures from one run on a shared machine: CPU and latency include other engineers' load.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS+"/"+runtime.GOARCH, runtime.GOMAXPROCS(0), instances, budget, detector, rate)
	for _, r := range rs {
		writeResult(&b, r, instances, rate)
	}
	return b.String()
}

func writeResult(b *strings.Builder, r result, instances int, rate float64) {
	n := r.services
	fmt.Fprintf(b, "## %d services x %d instances\n\n| figure | value |\n|---|---|\n", n, instances)
	row := func(k, v string) { fmt.Fprintf(b, "| %s | %s |\n", k, v) }
	row("time to full convergence", ms(r.converge))
	row("traffic to converge", fmt.Sprintf("%d requests, %s in, %s out", r.convergeCost.requests, bytesStr(float64(r.convergeCost.in)), bytesStr(float64(r.convergeCost.out))))
	row("steady state", rateStr(r.steady.reqPerSec, r.steady.inPerSec, r.steady.outPerSec))
	row(fmt.Sprintf("under %.0f changes/s (%.1f/s made)", rate, float64(len(r.latencies)+r.missed)/r.churn.d.Seconds()), rateStr(r.churn.reqPerSec, r.churn.inPerSec, r.churn.outPerSec))
	var all, after, writes []time.Duration
	byKind := make([][]time.Duration, kinds)
	for _, l := range r.latencies {
		all = append(all, l.d)
		after = append(after, l.d-l.write)
		writes = append(writes, l.write)
		byKind[l.kind] = append(byKind[l.kind], l.d)
	}
	row("change to snapshot, all kinds, from just before the write", fmt.Sprintf("p50 %s, p99 %s (%d changes, %d missed)", ms(percentile(all, .5)), ms(percentile(all, .99)), len(all), r.missed))
	row("&nbsp;&nbsp;the write itself (/v1/txn, Raft commit inside)", fmt.Sprintf("p50 %s, p99 %s", ms(percentile(writes, .5)), ms(percentile(writes, .99))))
	row("&nbsp;&nbsp;from the write's return", fmt.Sprintf("p50 %s, p99 %s", ms(percentile(after, .5)), ms(percentile(after, .99))))
	for k, ds := range byKind {
		row("&nbsp;&nbsp;"+kindNames[k], fmt.Sprintf("p50 %s, p99 %s (%d)", ms(percentile(ds, .5)), ms(percentile(ds, .99)), len(ds)))
	}
	row("CPU at steady state", fmt.Sprintf("%.2f%% of one core", 100*r.steadyCPU))
	row("CPU under churn", fmt.Sprintf("%.1f%% of one core", 100*r.churn.cpu))
	row("RSS at steady state (whole benchmark process)", bytesStr(float64(r.rss)))
	row("connections to the agent (kernel count)", fmt.Sprintf("%d at steady state, at most %d under churn", r.conns, r.connsChurn))
	fmt.Fprintf(b, "\n")
	writeBreakdown(b, r.breakdown)
	writeComparison(b, r, rate)
}

// writeComparison computes what the two other designs would exchange,
// from the sizes measured here: a full read of every service is what
// convergence cost; a catalog answer was read once.
func writeComparison(b *strings.Builder, r result, rate float64) {
	n := float64(r.services)
	full := float64(r.convergeCost.in + r.convergeCost.out)
	perSvc := full / n
	cat := float64(r.catalogBody)
	const wait = 300.0 // default wait_time, seconds
	// One blocking query per service: the wait running out re-asks every
	// service; a change wakes its service (and the catalog for three
	// kinds of four).
	pollSteady := fmt.Sprintf("%.1f req/s, %s/s", (n+1)/wait, bytesStr((full+cat)/wait))
	pollChurn := fmt.Sprintf("%.1f req/s, %s/s", rate*1.75, bytesStr(rate*perSvc+rate*0.75*cat))
	// Re-fetch everything on every change (Traefik and APISIX watch
	// mode; Fabio reads all checks instead): the whole catalog per wake.
	allChurn := fmt.Sprintf("%.0f req/s, %s/s", rate*(n+1), bytesStr(rate*(full+cat)))
	fmt.Fprintf(b, "| design (computed from the sizes above) | connections | steady state | under %.0f changes/s |\n|---|---|---|---|\n", rate)
	fmt.Fprintf(b, "| this source (measured) | %d | %.1f req/s, %s/s | %.1f req/s, %s/s |\n", r.conns, r.steady.reqPerSec,
		bytesStr(r.steady.inPerSec+r.steady.outPerSec), r.churn.reqPerSec, bytesStr(r.churn.inPerSec+r.churn.outPerSec))
	fmt.Fprintf(b, "| one blocking query per service (consul-template, Prometheus) | %d | %s | %s |\n", r.services+1, pollSteady, pollChurn)
	fmt.Fprintf(b, "| re-fetch everything per change, uncoalesced (Traefik/APISIX watch) | 2-%d | ~0 (two idle blocking queries) | %s |\n\n", 3, allChurn)
}
