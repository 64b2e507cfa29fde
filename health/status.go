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
	Total   int    `json:"total"` // instances, listed or not
	// Panic is true while too few instances are routable and the gateway
	// routes to all of them (health.panic_threshold).
	Panic bool `json:"panic"`
	// Instances is nil in a summary (Summaries) and omitted from JSON then.
	Instances []InstanceStatus `json:"instances,omitempty"`
}

// Services returns the state of every known instance, sorted by service
// name then instance id. Instances out of rotation are included.
func (c *Checker) Services() []ServiceStatus { return c.all(true) }

// Summaries returns every service's counts without its instances, sorted
// by name: cheap enough to call for thousands of services.
func (c *Checker) Summaries() []ServiceStatus { return c.all(false) }

// all returns every service's status sorted by name, with its instances
// when detail is set.
func (c *Checker) all(detail bool) []ServiceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ServiceStatus, 0, len(c.services))
	for name := range c.services {
		out = append(out, c.serviceLocked(name, detail))
	}
	slices.SortFunc(out, byName)
	return out
}

func byName(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) }

// ServicesNamed returns the full state of the named services that exist,
// sorted by name; unknown names are left out.
func (c *Checker) ServicesNamed(names ...string) []ServiceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ServiceStatus, 0, len(names))
	for _, name := range names {
		if _, ok := c.services[name]; ok && !slices.ContainsFunc(out, func(s ServiceStatus) bool { return s.Name == name }) {
			out = append(out, c.serviceLocked(name, true))
		}
	}
	slices.SortFunc(out, byName)
	return out
}

// serviceLocked builds the status of service name, with its instances
// when detail is set.
func (c *Checker) serviceLocked(name string, detail bool) ServiceStatus {
	insts := c.services[name]
	ss := ServiceStatus{Name: name, Panic: c.panic[name], Total: len(insts)}
	if detail {
		ss.Instances = make([]InstanceStatus, 0, len(insts))
	}
	for _, st := range insts {
		if st.routable {
			ss.Healthy++
		}
		if detail {
			ss.Instances = append(ss.Instances, instanceStatus(st))
		}
	}
	slices.SortFunc(ss.Instances, func(a, b InstanceStatus) int { return strings.Compare(a.ID, b.ID) })
	return ss
}

func instanceStatus(st *instanceState) InstanceStatus {
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
	return is
}
