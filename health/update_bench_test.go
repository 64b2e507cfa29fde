package health

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/switchyard-gw/switchyard/discovery"
)

// BenchmarkUpdateOneChangeInTwentyThousand is the cost of a discovery
// update at catalog scale: 5,000 services x 4 instances, one instance's
// registry status changed, probes not running.
func BenchmarkUpdateOneChangeInTwentyThousand(b *testing.B) {
	c := New(Options{Defaults: healthCfg(5e9, 1, 1), Setter: &recorder{}, Logger: slog.New(slog.DiscardHandler)})
	snap := func(status string) discovery.Snapshot {
		var s discovery.Snapshot
		for i := range 5000 {
			svc := discovery.Service{Name: fmt.Sprintf("svc-%04d", i)}
			for j := range 4 {
				in := discovery.Instance{ID: fmt.Sprintf("n%d/svc-%04d-%d", j, i, j), Address: "127.0.0.1:1", Registry: discovery.RegistryHealth{Status: discovery.StatusPassing}}
				if i == 42 && j == 0 {
					in.Registry.Status = status
				}
				svc.Instances = append(svc.Instances, in)
			}
			s.Services = append(s.Services, svc)
		}
		return s
	}
	a, z := snap(discovery.StatusPassing), snap(discovery.StatusCritical)
	c.Update(a)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			c.Update(z)
		} else {
			c.Update(a)
		}
	}
}
