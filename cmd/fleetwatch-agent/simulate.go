//go:build simulator

package main

import (
	"fmt"
	"log/slog"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// simulated replaces the real GPU sources with the scenario's simulated
// fleet, writing its ground truth to truth when that is set. The returned
// function releases the simulator.
func simulated(cfg *agent.Config, log *slog.Logger, scenario, truth string, fast bool) ([]agent.Option, func(), error) {
	sc, err := sim.Load(scenario)
	if err != nil {
		return nil, nil, err
	}
	runner, err := sim.New(sc, log.With("source", "sim"))
	if err != nil {
		return nil, nil, err
	}
	if truth != "" {
		if err := sim.WriteTruthFile(truth, runner.Fleet.GroundTruth()); err != nil {
			runner.Close()
			return nil, nil, fmt.Errorf("truth: %w", err)
		}
	}
	cfg.NVML.Enabled = false
	log.Info("simulating", "scenario", sc.Name, "nodes", len(runner.Fleet.Nodes), "gpus_per_node", sc.Fleet.GPUsPerNode,
		"models", len(sc.Models), "faults", len(sc.Faults), "duration", sc.Duration)
	// The simulated hosts booted when the scenario starts: a restarted agent
	// sends the same counter start, as a real one does.
	return []agent.Option{agent.WithSource(sim.Source{Runner: runner, Realtime: !fast}), agent.WithCounterStart(sc.Start)},
		func() { runner.Close() }, nil
}
