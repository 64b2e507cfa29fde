package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-gw/switchyard/discovery"
)

// The breakdown splits each change's time to the snapshot into the steps
// the source traced (discovery.ConsulEvent): the detector answer that
// named the changed service first, the full read of the service that the
// snapshot showing the change was built from, and the publication.

// phases, in order; a change contributes to those it has times for.
var phaseNames = []string{
	"write returned -> detector answer began",
	"detector request (sent -> answer began)",
	"detector answer read and decoded",
	"run loop got it and queued fetches",
	"queued -> fetch taken by a worker",
	"fetch (sent -> decoded)",
	"fetch decoded (or answer acted on) -> snapshot seen",
}

// breakdown is the per-kind, per-phase durations, and who named changes.
type breakdown struct {
	phases  [kinds][][]time.Duration // [kind][phase]
	namedBy [kinds]map[string]int
	answers map[string][]discovery.ConsulEvent // detector answers under churn, by kind
}

func breakDown(lats []latency, events []discovery.ConsulEvent) breakdown {
	b := breakdown{answers: map[string][]discovery.ConsulEvent{}}
	detectors := map[string][]discovery.ConsulEvent{} // service -> answers naming it
	fetches := map[string][]discovery.ConsulEvent{}
	for _, ev := range events {
		switch ev.Kind {
		case "summary", "catalog", "checks":
			b.answers[ev.Kind] = append(b.answers[ev.Kind], ev)
			for _, n := range ev.Names {
				detectors[n] = append(detectors[n], ev)
			}
		case "fetch":
			fetches[ev.Names[0]] = append(fetches[ev.Names[0]], ev)
		}
	}
	for k := range b.phases {
		b.phases[k] = make([][]time.Duration, len(phaseNames))
		b.namedBy[k] = map[string]int{}
	}
	for _, l := range lats {
		var det, fetch *discovery.ConsulEvent
		for i, ev := range detectors[l.service] {
			if !ev.Acted.Before(l.start) && !ev.Acted.After(l.seen) {
				det = &detectors[l.service][i]
				break
			}
		}
		for i, ev := range fetches[l.service] {
			if !ev.Acted.Before(l.start) && !ev.Acted.After(l.seen) && (det == nil || !ev.Dispatched.Before(det.Acted)) {
				fetch = &fetches[l.service][i] // the last one before the snapshot
			}
		}
		add := func(p int, d time.Duration) { b.phases[l.kind][p] = append(b.phases[l.kind][p], d) }
		if det == nil {
			b.namedBy[l.kind]["no detector (sweep)"]++
		} else {
			b.namedBy[l.kind][det.Kind]++
			add(0, det.Headers.Sub(l.returned))
			add(1, det.Headers.Sub(det.Start))
			add(2, det.Decoded.Sub(det.Headers))
			add(3, det.Acted.Sub(det.Decoded))
		}
		switch {
		case fetch != nil:
			if det != nil {
				add(4, fetch.Dispatched.Sub(det.Acted))
			}
			add(5, fetch.Decoded.Sub(fetch.Start))
			add(6, l.seen.Sub(fetch.Decoded))
		case det != nil: // shown without a fetch (new tags)
			add(6, l.seen.Sub(det.Acted))
		}
	}
	return b
}

func p50p99(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f", float64(percentile(ds, .5).Microseconds())/1000, float64(percentile(ds, .99).Microseconds())/1000)
}

// writeBreakdown renders the breakdown as markdown.
func writeBreakdown(b *strings.Builder, bd breakdown) {
	fmt.Fprintf(b, "Where the time goes under churn, p50 / p99 in ms (from the source's trace; each change counted once, from the first detector answer that named its service):\n\n")
	fmt.Fprintf(b, "| step |")
	for _, k := range kindNames {
		fmt.Fprintf(b, " %s |", k)
	}
	fmt.Fprintf(b, "\n|---|---|---|---|---|\n")
	for p, name := range phaseNames {
		fmt.Fprintf(b, "| %s |", name)
		for k := range kinds {
			fmt.Fprintf(b, " %s |", p50p99(bd.phases[k][p]))
		}
		fmt.Fprintf(b, "\n")
	}
	fmt.Fprintf(b, "| named first by |")
	for k := range kinds {
		var parts []string
		for _, by := range slices.Sorted(maps.Keys(bd.namedBy[k])) {
			parts = append(parts, fmt.Sprintf("%s %d", by, bd.namedBy[k][by]))
		}
		fmt.Fprintf(b, " %s |", strings.Join(parts, ", "))
	}
	fmt.Fprintf(b, "\n\n| detector answers under churn | answers | request (sent -> answer began) | read and decoded |\n|---|---|---|---|\n")
	for _, kind := range slices.Sorted(maps.Keys(bd.answers)) {
		var req, dec []time.Duration
		for _, ev := range bd.answers[kind] {
			req = append(req, ev.Headers.Sub(ev.Start))
			dec = append(dec, ev.Decoded.Sub(ev.Headers))
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s |\n", kind, len(bd.answers[kind]), p50p99(req), p50p99(dec))
	}
	fmt.Fprintf(b, "\n")
}
