package score

import (
	"context"
	"log/slog"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
)

// Paged is a scenario run through the fleet-health detector and alerting,
// as the analyzer runs them: what was injected, detected and paged.
type Paged struct {
	Truths     []sim.Truth
	Detections []fleet.Detection
	Pages      []scoring.Page
	Incidents  []incident.Incident
	// Windows evaluated; Late batches that arrived after their window
	// was evaluated; Noise what the scenario's noise did.
	Windows, Late int
	Noise         sim.NoiseStats
	// Skipped counts the rules that could not run, per rule and reason.
	Skipped map[health.SkipKey]uint64
}

// Inventory is the simulated fleet's GPUs for alerting's correlation.
func Inventory(sc *sim.Scenario) *correlate.Inventory {
	inv := correlate.NewInventory()
	for _, n := range sim.NewFleet(sc).Nodes {
		topo := fleet.Topology{Datacenter: n.Resource.Datacenter, Row: n.Resource.Row, Rack: n.Resource.Rack, Node: n.Name, Cluster: n.Resource.Cluster}
		for _, g := range n.GPUs {
			inv.Add(topo, g.UUID)
		}
	}
	return inv
}

// RunPaged simulates sc and evaluates every window with a fleet-health
// evaluator (hcfg) whose detections go to an alerting manager (acfg, the
// fleet's inventory, notifications recorded), windows completing after the
// engine's lateness (hcfg's, else the engine's default) as the analyzer
// evaluates them.
func RunPaged(sc *sim.Scenario, hcfg health.Config, acfg alerting.Config, log *slog.Logger) (*Paged, error) {
	ev, err := health.NewEvaluator(hcfg)
	if err != nil {
		return nil, err
	}
	ev.SetLogger(log)
	rec := &scoring.Recorder{}
	m, err := alerting.NewManager(acfg, alerting.Deps{Inventory: Inventory(sc), Notifier: rec, Logger: log})
	if err != nil {
		return nil, err
	}
	out := &Paged{}
	w := NewWindower(hcfg)
	w.Lateness = hcfg.Lateness
	if w.Lateness == 0 {
		w.Lateness = engine.NewDefaultConfig().Lateness
	}
	var failed error
	consume := func(in *health.Input) {
		dets := ev.Evaluate(in)
		out.Detections = append(out.Detections, dets...)
		out.Windows++
		if err := m.Consume(context.Background(), fleet.Evaluation{Detector: hcfg.Name, Window: in.Window, Detections: dets}); err != nil && failed == nil {
			failed = err
		}
	}
	r, err := Simulate(sc, log, func(b *record.Batch) {
		for _, in := range w.Add(b) {
			consume(in)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, in := range w.Rest(sc.Start.Add(sc.Duration)) {
		consume(in)
	}
	if failed != nil {
		return nil, failed
	}
	out.Truths, out.Late, out.Noise, out.Skipped = r.Fleet.GroundTruth(), w.Late, r.Noise(), ev.Skipped()
	out.Pages, out.Incidents = rec.Pages(m.Incidents())
	return out, nil
}

// Day moves a scenario to its own day, n days after its start, so that
// runs scored together never overlap in time.
func Day(sc *sim.Scenario, n int) {
	sc.Start = sc.Start.Add(time.Duration(n) * 24 * time.Hour)
}
