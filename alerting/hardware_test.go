package alerting_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/labelfree"
)

// labelFreeRun feeds windows [0, n) of f through fleet health into a manager
// with the default configuration and returns it with its pages.
func labelFreeRun(t *testing.T, f *labelfree.Fleet, cfg health.Config, n int, each func(k int, p *pages)) (*alerting.Manager, *pages) {
	t.Helper()
	inv := correlate.NewInventory()
	for r := 0; r < f.Racks; r++ {
		for nd := 0; nd < f.Nodes; nd++ {
			for g := 0; g < f.GPUs; g++ {
				id := f.GPU(r, nd, g)
				inv.Add(id.Topology, id.UUID)
			}
		}
	}
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: inv, Notifier: p})
	run := newHealthRun(t, m)
	run.cfg = cfg
	ev, err := health.NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run.ev = ev
	for k := range n {
		run.consume(f.Window(k))
		if each != nil {
			each(k, p)
		}
	}
	return m, p
}

// An ECC ramp on a label-free fleet pages (an error incident with a drain
// action) once its evidence has persisted for escalate_after, and not
// before: a GPU predicted to fail is taken out of service, where a drift
// warning never pages alone.
func TestECCRampPagesOnceItPersists(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
	f := labelfree.New(4, 4+rng.IntN(5), 8, rng.Uint64())
	cfg := health.NewDefaultConfig()
	r, n, g := rng.IntN(f.Racks), rng.IntN(f.Nodes), rng.IntN(f.GPUs)
	from := 2 + rng.IntN(3)
	f.Faults = []labelfree.Fault{{Kind: labelfree.ECCRamp, Rack: r, Node: n, GPU: g, From: from, Magnitude: 0.05 + 0.2*rng.Float64()}}
	steps := int(cfg.EscalateAfter / cfg.Interval)
	uuid := f.GPU(r, n, g).UUID
	paged := -1
	m, p := labelFreeRun(t, f, cfg, from+steps+12, func(k int, p *pages) {
		if paged < 0 && slices.ContainsFunc(p.lines(), func(l string) bool { return strings.Contains(l, uuid) }) {
			paged = k
		}
	})
	// Raised a few windows after the ramp starts (once its count is
	// improbable, 2 of 3), escalated after steps windows flagged, opened
	// after open_after (2) windows at error: never before from+steps.
	if paged < 0 {
		t.Fatalf("ECC ramp on %s never paged: %v", uuid, p.lines())
	}
	if earliest := from + steps; paged < earliest || paged > earliest+8 {
		t.Errorf("paged in window %d; want from window %d (ramp from %d, escalate_after %v) to %d", paged, earliest, from, cfg.EscalateAfter, earliest+8)
	}
	for _, inc := range m.Incidents() {
		if strings.Contains(inc.Key, uuid) && inc.Severity != health.SevError && inc.Severity != health.SevCritical {
			t.Errorf("incident %s severity %s, want error", inc.Key, inc.Severity)
		}
	}
}

// A hot GPU is class thermal from the detector to the incident, whose
// family (the label routing matches) is thermal.
func TestThermalIsThermalEndToEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 22))
	f := labelfree.New(4, 4+rng.IntN(5), 8, rng.Uint64())
	r, n, g := rng.IntN(f.Racks), rng.IntN(f.Nodes), rng.IntN(f.GPUs)
	f.Faults = []labelfree.Fault{{Kind: labelfree.Hot, Rack: r, Node: n, GPU: g, From: 2, Magnitude: 14 + 6*rng.Float64()}}
	m, p := labelFreeRun(t, f, health.NewDefaultConfig(), 8, nil)
	uuid := f.GPU(r, n, g).UUID
	var found bool
	for _, inc := range m.Incidents() {
		if strings.Contains(inc.Key, uuid) {
			found = true
			if inc.Family != "thermal" || inc.Class != health.ClassThermal || !strings.HasPrefix(inc.Key, "thermal/") {
				t.Errorf("incident %s: family %s, class %s; want thermal", inc.Key, inc.Family, inc.Class)
			}
		}
	}
	if !found || len(p.lines()) == 0 {
		t.Errorf("no incident paged for the hot GPU %s: %v", uuid, p.lines())
	}
}
