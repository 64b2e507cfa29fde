package health

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

func TestAWeightChangeAloneIsPublished(t *testing.T) {
	var got [][]int
	c := New(Options{Defaults: withMerge(healthCfg(10*time.Millisecond, 1, 1), config.MergeConsul), Setter: setterFunc(func(s string, ins []discovery.Instance, p bool) {
		var ws []int
		for _, in := range ins {
			ws = append(ws, in.Share())
		}
		got = append(got, ws)
	})})
	in := func(id string, weight int) discovery.Instance {
		return discovery.Instance{ID: id, Address: "127.0.0.1:1", Registry: discovery.RegistryHealth{Status: discovery.StatusPassing}, Weight: discovery.WeightOf(weight)}
	}
	c.Update(snapshot("web", in("a", 9), in("b", 1)))
	c.Update(snapshot("web", in("a", 9), in("b", 1))) // unchanged: not published again
	c.Update(snapshot("web", in("a", 5), in("b", 5)))
	if fmt.Sprint(got) != "[[9 1] [5 5]]" {
		t.Fatalf("published weights %v, want [[9 1] [5 5]]: once each", got)
	}
}
