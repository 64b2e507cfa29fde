package health

import (
	"slices"
	"strings"
	"time"
)

// InstanceStatus is the explainable state of one instance, for the admin API
// and the dashboard.
type InstanceStatus struct {
	ID       string    `json:"id"`
	Address  string    `json:"address"`
	Routable bool      `json:"routable"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`

	// Ejected is set while passive health keeps the instance out.
	Ejected *Ejection `json:"ejected,omitempty"`

	Registry struct {
		Status string `json:"status"`
		Check  string `json:"check,omitempty"`
		Output string `json:"output,omitempty"`
	} `json:"registry"`

	Probe struct {
		Status          ProbeStatus `json:"status"`
		ConsecutiveOK   int         `json:"consecutive_passes"`
		ConsecutiveFail int         `json:"consecutive_failures"`
		LastError       string      `json:"last_error,omitempty"`
		LastLatencyMS   float64     `json:"last_latency_ms"`
		LastProbe       *time.Time  `json:"last_probe,omitempty"`
	} `json:"probe"`
}

// Ejection describes a passive-health ejection in force.
type Ejection struct {
	Until     time.Time `json:"until"`
	Ejections int       `json:"ejections"` // in a row, including this one
}

// ServiceStatus groups the instances of one service.
type ServiceStatus struct {
	Name    string `json:"name"`
	Healthy int    `json:"healthy"`
	// Panic is true while too few instances are routable and the gateway
	// routes to all of them (health.panic_threshold).
	Panic     bool             `json:"panic"`
	Instances []InstanceStatus `json:"instances"`
}

// Services returns the state of every known instance, sorted by service
// name then instance id. Instances out of rotation are included.
func (c *Checker) Services() []ServiceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ServiceStatus, 0, len(c.services))
	for name, insts := range c.services {
		ss := ServiceStatus{Name: name, Panic: c.panic[name], Instances: make([]InstanceStatus, 0, len(insts))}
		for _, st := range insts {
			is := InstanceStatus{
				ID:       st.inst.ID,
				Address:  st.inst.Address,
				Routable: st.routable,
				Reason:   st.reason,
				Since:    st.since,
			}
			if st.ejected {
				is.Ejected = &Ejection{Until: st.ejectEnd, Ejections: st.ejections}
			}
			is.Registry.Status = st.inst.Registry.Status
			if is.Registry.Status == "" {
				is.Registry.Status = "none"
			}
			is.Registry.Check = st.inst.Registry.Check
			is.Registry.Output = st.inst.Registry.Output
			is.Probe.Status = st.probe
			is.Probe.ConsecutiveOK = st.passes
			is.Probe.ConsecutiveFail = st.fails
			is.Probe.LastError = st.lastErr
			is.Probe.LastLatencyMS = float64(st.lastLatency.Microseconds()) / 1000
			if st.probed {
				t := st.lastProbe
				is.Probe.LastProbe = &t
			}
			if st.routable {
				ss.Healthy++
			}
			ss.Instances = append(ss.Instances, is)
		}
		slices.SortFunc(ss.Instances, func(a, b InstanceStatus) int { return strings.Compare(a.ID, b.ID) })
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
