package admin

import (
	"strconv"

	"github.com/switchyard-gw/switchyard/gateway"
)

// balanceLine is one routable instance in the dashboard's balancing table.
// Its JavaScript twin is renderBalancing in dashboard.html.
type balanceLine struct {
	Service, Policy, ID string
	Weight, Effective   string
	Ramping             bool // effective below configured: slow start
	Drained             bool // configured weight 0
	InFlight            int64
}

func newBalanceLines(bal []gateway.BalanceInfo) []balanceLine {
	var out []balanceLine
	for _, s := range bal {
		for _, in := range s.Instances {
			out = append(out, balanceLine{
				Service: s.Service, Policy: s.Policy, ID: in.ID,
				Weight:    strconv.Itoa(in.Weight),
				Effective: fmtWeight(in.EffectiveWeight),
				Ramping:   in.EffectiveWeight < float64(in.Weight),
				Drained:   in.Weight == 0,
				InFlight:  in.InFlight,
			})
		}
	}
	return out
}

// fmtWeight words an effective weight as JavaScript's String(number)
// does for these values: "3", "0.55".
func fmtWeight(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) }
