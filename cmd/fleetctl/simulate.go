package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/demo"
)

func runSimulate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "simulate")
	resolve := chFlags(fs)
	scenario := fs.String("scenario", "deploy/scenarios/small.yaml", "simulator scenario (fleet, models, faults)")
	truth := fs.String("truth", "", "write the scenario's ground truth here (JSON lines)")
	work := fs.String("work-dir", "", "directory for the agent's buffer and the collector's queue (default: a temporary one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	sc, err := sim.Load(*scenario)
	if err != nil {
		return err
	}
	log := logger(e)
	c, err := createAndOpen(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Migrate(ctx); err != nil {
		return err
	}
	dir := *work
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetctl-simulate-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(e.stderr, "simulating %q (%v of data) through the agent and collector into %v/%s ...\n",
		sc.Name, sc.Duration, cfg.Addrs, cfg.Database)
	last := time.Now()
	res, err := demo.Simulate(ctx, sc, c, dir, log, func(appended, acked uint64) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "  %d records buffered, %d acknowledged by the collector\n", appended, acked)
		}
	})
	if err != nil {
		return err
	}
	if *truth != "" {
		if err := sim.WriteTruthFile(*truth, res.Truth); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "loaded in %v: gpu_samples now %d rows, inference_events %d rows; %d injected fault(s)\n",
		res.Duration.Round(time.Millisecond), res.Samples, res.Events, len(res.Truth))
	for _, t := range res.Truth {
		fmt.Fprintf(e.stdout, "  %-16s %-20s %s .. %s\n", t.Fault, t.Type, t.Start.Format(time.TimeOnly), t.End.Format(time.TimeOnly))
	}
	return nil
}
