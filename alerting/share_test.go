package alerting_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
)

// Analyzers sharing the fleet hand alerting one evaluation per share of a
// detector. A new alerting owner is primed with each share's last
// evaluation (nothing moves, nothing pages), and the shares of one
// detector evaluating the same window count as one window toward
// open_after: a datacenter incident whose racks two shares evaluate opens
// after two windows, as with one analyzer, not after one.
func TestSharesOfOneWindowCountOnce(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
	// Two racks in two rows of dc-0 overheat; shares s0 and s1 evaluate one
	// rack each.
	racks := map[string][]fixture.GPU{
		"fleet_health@s0": testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-01" }),
		"fleet_health@s1": testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-05" }),
	}
	iv := 30 * time.Second
	eval := func(share string, i int) fleet.Evaluation {
		w := fleet.Window{Start: t0.Add(time.Duration(i) * iv), End: t0.Add(time.Duration(i+1) * iv)}
		return fleet.Evaluation{Detector: share, Window: w, Detections: fixture.Thermal("fleet_health", "gpu_thermal", "warning", w.End, racks[share])}
	}
	ctx := context.Background()
	if err := m.Prime(ctx, []fleet.Evaluation{eval("fleet_health@s0", 0), eval("fleet_health@s1", 0)}); err != nil {
		t.Fatal(err)
	}
	if len(m.Incidents()) != 0 || len(p.lines()) != 0 {
		t.Fatalf("priming moved incidents %v or paged %v", m.Incidents(), p.lines())
	}
	for _, share := range []string{"fleet_health@s0", "fleet_health@s1"} {
		if err := m.Consume(ctx, eval(share, 1)); err != nil {
			t.Fatal(err)
		}
	}
	incs := m.Incidents()
	if len(incs) != 1 || incs[0].Key != "thermal/datacenter/dc-0" || incs[0].Seen != 1 {
		var got []string
		for _, inc := range incs {
			got = append(got, fmt.Sprintf("%s %s seen %d", inc.Key, inc.Status, inc.Seen))
		}
		t.Fatalf("after one window of both shares: %v, want the datacenter incident pending, seen once", got)
	}
	if !slices.Equal(incs[0].Detectors, []string{"fleet_health@s0", "fleet_health@s1"}) {
		t.Errorf("incident detectors %v", incs[0].Detectors)
	}
	if len(p.lines()) != 0 {
		t.Fatalf("paged after one window: %v", p.lines())
	}
	if err := m.Consume(ctx, eval("fleet_health@s0", 2)); err != nil {
		t.Fatal(err)
	}
	if got := p.lines(); !slices.Equal(got, []string{"trigger thermal/datacenter/dc-0"}) {
		t.Fatalf("after the second window: %v", got)
	}
}
