package health

import (
	"fmt"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

// ProbeStatus is the gateway's own view of an instance.
type ProbeStatus string

// Probe statuses. An instance starts Unknown, becomes Up on its first passing
// probe and leaves Up only after UnhealthyThreshold consecutive failures.
const (
	ProbeUnknown  ProbeStatus = "unknown"
	ProbeUp       ProbeStatus = "passing"
	ProbeDown     ProbeStatus = "failing"
	ProbeDisabled ProbeStatus = "disabled" // merge policy "consul": no probes
)

// settings are a service's effective probe settings. Every value in them
// was decoded and validated where it was read (config.Load, discovery's tag
// parser). up is how the instances are spoken to; prober, built from it, is
// nil for the plain HTTP/1.1 probe over the Checker's own connections.
type settings struct {
	config.Health
	up     config.Upstream
	prober prober
}

func newSettings(h config.Health, up config.Upstream) settings {
	return settings{Health: h, up: up, prober: upstreamProber(h, up)}
}

func (s settings) equal(o settings) bool { return s.Health == o.Health && s.up.Equal(o.up) }

// instanceState is everything the checker knows about one instance. Guarded
// by Checker.mu.
type instanceState struct {
	service string
	inst    discovery.Instance
	set     *settings // shared by the instances of a service; never modified

	probe       ProbeStatus
	passes      int // consecutive
	fails       int // consecutive
	lastErr     string
	lastLatency time.Duration
	lastProbe   time.Time
	probed      bool // at least one probe finished

	routable bool
	reason   string
	since    time.Time // when routable last changed

	task *probeTask // its probe schedule; nil when not probed

	// Passive health: ejected by real-request failures until ejectEnd.
	ejected     bool
	ejections   int // consecutive ejections, for the growing ejection time
	ejectReason string
	ejectEnd    time.Time
	ejectGen    uint64
	ejectTimer  *time.Timer
}

// record applies one probe result and reports whether the probe status changed.
func (st *instanceState) record(err error, latency time.Duration, now time.Time) bool {
	st.lastProbe, st.lastLatency, st.probed = now, latency, true
	before := st.probe
	if err == nil {
		st.passes++
		st.fails = 0
		st.lastErr = ""
		switch st.probe {
		case ProbeUnknown:
			st.probe = ProbeUp // a new instance joins on its first pass
		case ProbeDown:
			if st.passes >= st.set.HealthyThreshold {
				st.probe = ProbeUp
			}
		}
	} else {
		st.fails++
		st.passes = 0
		st.lastErr = err.Error()
		switch st.probe {
		case ProbeUnknown:
			st.probe = ProbeDown // never was in rotation
		case ProbeUp:
			if st.fails >= st.set.UnhealthyThreshold {
				st.probe = ProbeDown
			}
		}
	}
	return st.probe != before
}

// verdict computes routable and the one-line reason from registry health,
// probe status and the merge policy.
func verdict(st *instanceState, merge string, acceptWarning bool) (bool, string) {
	reg := st.inst.Registry
	regOK := true
	var regWhy string
	switch reg.Status {
	case discovery.StatusNone, discovery.StatusPassing:
	case discovery.StatusWarning:
		regOK = acceptWarning
		regWhy = "consul: warning"
	default:
		regOK = false
		regWhy = "consul: " + reg.Status
	}
	if regWhy != "" && reg.Check != "" {
		regWhy += fmt.Sprintf(" (check %q", reg.Check)
		if reg.Output != "" {
			regWhy += ": " + oneLine(reg.Output, 120)
		}
		regWhy += ")"
	}

	probeOK := st.probe == ProbeUp
	var probeWhy string
	switch st.probe {
	case ProbeUnknown:
		probeWhy = "probe: not probed yet"
	case ProbeDown:
		probeWhy = fmt.Sprintf("probe: %d consecutive failure%s, last: %s", st.fails, plural(st.fails), st.lastErr)
		if st.fails == 0 {
			probeWhy = fmt.Sprintf("probe: %d of %d passes needed to rejoin", st.passes, st.set.HealthyThreshold)
		}
	case ProbeUp:
		if st.fails > 0 {
			probeWhy = fmt.Sprintf("probe: %d consecutive failure%s (leaves at %d), last: %s", st.fails, plural(st.fails), st.set.UnhealthyThreshold, st.lastErr)
		} else {
			probeWhy = fmt.Sprintf("probe: passing (%d consecutive)", st.passes)
		}
	}

	if st.ejected {
		return false, st.ejectReason
	}
	switch merge {
	case config.MergeConsul:
		if regOK {
			return true, "in rotation: " + registryOK(reg.Status)
		}
		return false, regWhy
	case config.MergeProbe:
		if probeOK {
			return true, "in rotation: " + probeWhy
		}
		return false, probeWhy
	default: // both
		switch {
		case regOK && probeOK:
			return true, "in rotation: " + registryOK(reg.Status) + ", " + probeWhy
		case !regOK && !probeOK:
			return false, regWhy + "; " + probeWhy
		case !regOK && reg.AgentOnly:
			// Only the agent's gossip liveness fails, and the probe
			// reaches the instance: the direct evidence wins.
			return true, "in rotation: " + probeWhy + "; " + regWhy + " is the Consul agent's liveness, not the service's"
		case !regOK:
			return false, regWhy
		default:
			return false, probeWhy
		}
	}
}

func registryOK(status string) string {
	if status == discovery.StatusNone {
		return "static"
	}
	return "consul: " + status
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func oneLine(s string, max int) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		out = append(out, r)
		if len(out) >= max {
			out = append(out, '…')
			break
		}
	}
	return string(out)
}
