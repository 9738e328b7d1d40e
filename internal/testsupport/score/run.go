package score

import (
	"fmt"
	"log/slog"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// Simulate runs sc to its end and hands every batch to each, in time order.
func Simulate(sc *sim.Scenario, log *slog.Logger, each func(*record.Batch)) (*sim.Runner, error) {
	if sc.Duration <= 0 {
		return nil, fmt.Errorf("scenario %s: needs a duration", sc.Name)
	}
	r, err := sim.New(sc, log)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	defer r.Close()
	for t := sc.Start.Add(sc.Interval); !t.After(sc.Start.Add(sc.Duration)); t = t.Add(sc.Interval) {
		for _, b := range r.Step(t) {
			each(b)
		}
	}
	return r, nil
}

// Run simulates sc and evaluates every complete window in memory; it
// returns the ground truth and the detections.
func Run(sc *sim.Scenario, cfg health.Config, log *slog.Logger) ([]sim.Truth, []fleet.Detection, error) {
	ev, err := health.NewEvaluator(cfg)
	if err != nil {
		return nil, nil, err
	}
	w := NewWindower(cfg)
	var dets []fleet.Detection
	r, err := Simulate(sc, log, func(b *record.Batch) {
		for _, in := range w.Add(b) {
			dets = append(dets, ev.Evaluate(in)...)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	// The windows the run covers whole count, the last one too.
	for _, in := range w.Rest(sc.Start.Add(sc.Duration)) {
		dets = append(dets, ev.Evaluate(in)...)
	}
	return r.Fleet.GroundTruth(), dets, nil
}
