package main

import "fmt"

// Issue 18 asks for a table of requests per proxy CPU-second for nginx,
// HAProxy, Caddy and Switchyard, with Switchyard's CPU per request, p99 and
// peak RSS beside HAProxy's, at 1, 64 and 256 connections; and for targets
// on those ratios.

// issue18Proxies are the proxies whose requests per CPU-second the table
// shows, in its column order.
var issue18Proxies = []struct{ name, label string }{
	{tNginx, "nginx"}, {tHAProxy, "HAProxy"}, {tCaddy, "Caddy"}, {tSwitchyard, "Switchyard"},
}

// issue18Row is one line of the table: one connection count. Requests per
// CPU-second are computed per round and summarised over rounds; the ratios
// are same-round ratios summarised over rounds; the p99 and RSS pairs are
// each target's own median.
type issue18Row struct {
	conns        int
	perCPUSecond []spread // in issue18Proxies order
	cpuVsHAProxy spread
	p99          [2]spread // Switchyard, HAProxy (µs)
	p99Ratio     spread
	rss          [2]spread // Switchyard, HAProxy (MiB)
	rssRatio     spread
}

// issue18Rows computes the table for the connection counts that were run.
func issue18Rows(r *results, q ratios) []issue18Row {
	var rows []issue18Row
	for _, c := range r.conns {
		row := issue18Row{
			conns:        c,
			cpuVsHAProxy: q.cpuVs(tHAProxy)(c),
			p99:          [2]spread{r.over(tSwitchyard, c, mP99), r.over(tHAProxy, c, mP99)},
			p99Ratio:     q.p99VsHAProxy(c),
			rss:          [2]spread{r.over(tSwitchyard, c, mRSS), r.over(tHAProxy, c, mRSS)},
			rssRatio:     q.rssVsHAProxy(c),
		}
		for _, p := range issue18Proxies {
			row.perCPUSecond = append(row.perCPUSecond, r.perCPUSecond(p.name, c))
		}
		rows = append(rows, row)
	}
	return rows
}

// perCPUSecond summarizes over rounds the requests name served per second
// of its own CPU time (1 / CPU per request). A run whose CPU time rounded
// to no tick at all is left out.
func (r *results) perCPUSecond(name string, conns int) spread {
	var v []float64
	for round := 0; round < r.rounds; round++ {
		if s, ok := r.get(name, conns, round); ok && s.proxy && s.cpuPerReq > 0 {
			v = append(v, 1e6/us(s.cpuPerReq))
		}
	}
	return summarize(v)
}

// writeIssue18Table writes the table in the layout of issue 18.
func writeIssue18Table(w writer, rows []issue18Row) {
	w("\n## Issue 18: requests per proxy CPU-second\n\n")
	w("Requests per CPU-second = 1 / (CPU per request), per round, median over rounds. " +
		"The ÷ and / columns: Switchyard beside HAProxy; ratios within each round, median (min–max) over rounds; " +
		"the p99 and RSS pairs are each proxy's median, the ratio after them is the median same-round ratio.\n\n")
	w("| conns |")
	for _, p := range issue18Proxies {
		w(" %s |", p.label)
	}
	w(" Switchyard CPU/req ÷ HAProxy | p99 Switchyard / HAProxy | peak RSS Switchyard / HAProxy |\n|---:|")
	for range issue18Proxies {
		w("---:|")
	}
	w("---:|---:|---:|\n")
	for _, row := range rows {
		w("| %d |", row.conns)
		for _, s := range row.perCPUSecond {
			if s.n == 0 {
				w(" – |")
			} else {
				w(" %s |", group(s.med))
			}
		}
		w(" %s | %s | %s |\n", fmtSpreadUnit(row.cpuVsHAProxy, 2, "×"),
			fmtPair(row.p99, row.p99Ratio, fmtLatencyPair), fmtPair(row.rss, row.rssRatio, fmtMiBPair))
	}
}

// fmtPair formats two medians with format and the same-round ratio after
// them: "3.78 / 2.13 ms (1.77×)".
func fmtPair(pair [2]spread, ratio spread, format func(a, b float64) string) string {
	if pair[0].n == 0 || pair[1].n == 0 {
		return "–"
	}
	out := format(pair[0].med, pair[1].med)
	if ratio.n > 0 {
		out += " (" + fmtNum(ratio.med, 2) + "×)"
	}
	return out
}

// fmtLatencyPair formats two latencies in µs, in one unit: µs below a
// millisecond, else ms.
func fmtLatencyPair(a, b float64) string {
	if max(a, b) < 1000 {
		return fmt.Sprintf("%s / %s µs", fmtNum(a, 0), fmtNum(b, 0))
	}
	return fmt.Sprintf("%s / %s ms", fmtNum(a/1000, 2), fmtNum(b/1000, 2))
}

func fmtMiBPair(a, b float64) string {
	return fmt.Sprintf("%s / %s MiB", fmtNum(a, 1), fmtNum(b, 1))
}

// issue18Goals are the targets of issue 18.
func issue18Goals(r *results, q ratios) []goal {
	cpu := q.cpuVs(tHAProxy)
	return []goal{
		{"CPU/req at 1 conn ≤ 1.2× HAProxy's", 1, cpu(1), 1.2, false, "×"},
		{"CPU/req at 64 conns ≤ 1.0× HAProxy's", 64, cpu(64), 1.0, false, "×"},
		{"CPU/req at 256 conns ≤ 1.0× HAProxy's", 256, cpu(256), 1.0, false, "×"},
		{"p99 at 64 conns ≤ 1.3× HAProxy's", 64, q.p99VsHAProxy(64), 1.3, false, "×"},
		{"p99 at 256 conns ≤ 1.3× HAProxy's", 256, q.p99VsHAProxy(256), 1.3, false, "×"},
		{"added p50 latency (− direct) at 1 conn ≤ nginx's", 1, q.addedVsNginx(1), 1.0, false, "×"},
		{"peak RSS at 256 conns ≤ 30 MiB", 256, r.over(tSwitchyard, 256, mRSS), 30, false, " MiB"},
	}
}

// backendDesc says what answered behind the proxies, for the report.
func backendDesc(mode string) string {
	if mode == backendNetHTTP {
		return "3 net/http servers (`bench/backend -mode nethttp`; GOMAXPROCS=1, 4-byte body, keep-alive)"
	}
	return "3 minimal HTTP/1.1 responders (`bench/backend -mode minimal`: written by hand on a raw TCP listener, no net/http; " +
		"GOMAXPROCS=1, a fixed response with a 4-byte body and Content-Length, keep-alive, the answers to pipelined requests in one write)"
}
