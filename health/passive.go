package health

import (
	"fmt"
	"time"
)

// Eject takes an instance out of rotation after it failed real requests
// (passive health). The gateway calls it when an instance reaches
// health.passive.consecutive_failures; reason says what the last failure
// was. The n-th ejection in a row lasts n x base_ejection_time (capped at
// max_ejection_time). Eject refuses (returns false) when it would take more
// than max_ejection_percent of the service's instances out, or when the
// instance is already ejected or unknown. Safe for concurrent use.
func (c *Checker) Eject(service, id, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	insts := c.services[service]
	st := insts[id]
	if st == nil || st.ejected {
		return false
	}
	p := c.opt.Defaults.Passive
	ejected := 0
	for _, o := range insts {
		if o.ejected {
			ejected++
		}
	}
	if (ejected+1)*100 > p.MaxEjectionPercent*len(insts) {
		c.log.Warn("passive ejection refused: max_ejection_percent reached", "service", service, "instance", id,
			"ejected", ejected, "instances", len(insts), "max_ejection_percent", p.MaxEjectionPercent, "reason", reason)
		return false
	}
	now := time.Now()
	// A long quiet spell since the last ejection forgives the past ones.
	if !st.ejectEnd.IsZero() && now.Sub(st.ejectEnd) > p.MaxEjectionTime {
		st.ejections = 0
	}
	st.ejections++
	d := time.Duration(st.ejections) * p.BaseEjectionTime
	if d > p.MaxEjectionTime {
		d = p.MaxEjectionTime
	}
	st.ejected = true
	st.ejectReason = fmt.Sprintf("passive: ejected for %s (ejection %d) after %s", d, st.ejections, reason)
	st.ejectEnd = now.Add(d)
	st.ejectGen++
	gen := st.ejectGen
	st.ejectTimer = time.AfterFunc(d, func() { c.unEject(service, id, gen) })
	if c.evalLocked(st) {
		c.publishLocked(service)
	}
	return true
}

// unEject returns an instance to the verdict of its other signals once its
// ejection time is over.
func (c *Checker) unEject(service, id string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.services[service][id]
	if st == nil || !st.ejected || st.ejectGen != gen {
		return
	}
	st.ejected = false
	st.ejectTimer = nil
	st.ejectEnd = time.Now()
	if c.evalLocked(st) {
		c.publishLocked(service)
	}
}

func (st *instanceState) stopEjectTimer() {
	if st.ejectTimer != nil {
		st.ejectTimer.Stop()
		st.ejectTimer = nil
	}
}
