package discovery

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/config"
)

// weightTag is the tag key (after the prefix) that sets an instance's
// weight; it overrides the registration's Weights.
const weightTag = "weight"

// consulWeight returns the Instance.Weight of one Consul service entry
// whose registry status is status: the <prefix>.weight=N tag of the
// instance itself when it has a valid one, otherwise Weights.Warning for an
// instance in warning and Weights.Passing for any other. Consul fills both
// with 1 when a registration sets none; an entry without weights gets
// DefaultWeight. A weight of 0 drains the instance;
// weights above config.MaxWeight are capped. An invalid tag comes back as a
// warning and is otherwise ignored.
func consulWeight(prefix string, svc *api.AgentService, status string) (int, string) {
	w := svc.Weights.Passing
	switch {
	case w == 0:
		// Consul rejects a Passing weight below 1, so 0 means an entry
		// without weights (hand-built or from an old catalog): default.
		w = DefaultWeight
	case status == StatusWarning:
		w = svc.Weights.Warning
	}
	var warn string
	for _, tag := range svc.Tags {
		v, ok := strings.CutPrefix(tag, prefix+"."+weightTag+"=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			warn = fmt.Sprintf("instance %q of service %q: tag %q ignored: want a whole number from 0 (drain) to %d", svc.ID, svc.Service, tag, config.MaxWeight)
			continue
		}
		w, warn = n, ""
		break
	}
	return WeightOf(w), warn
}
