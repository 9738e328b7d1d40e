package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/fleetwatch/fleetwatch/internal/demo"
	"github.com/fleetwatch/fleetwatch/storage"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	cfg := demo.NewDefaultConfig()
	fs := newFlags(e, "demo")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory for the local ClickHouse's data, the collector's queue and the agent's buffer")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "simulator scenario: fleet, models and the faults to inject")
	fs.StringVar(&cfg.Analyzer, "config", cfg.Analyzer, "analyzer configuration (detectors, alerting, model catalog)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: the scenario's duration plus --grace)")
	fs.DurationVar(&cfg.Grace, "grace", cfg.Grace, "keep evaluating this long after the scenario ends")
	fs.DurationVar(&cfg.Progress, "progress", cfg.Progress, "interval between progress lines")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep ClickHouse running after the summary, until Ctrl-C")
	fs.IntVar(&cfg.CostDays, "cost-days", cfg.CostDays, "days of hourly GPU history written before the live part for the daily cost detectors (0: none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if os.Getenv(storage.DSNEnv) != "" {
		var err error
		if cfg.ClickHouse, err = storage.FromEnv(cfg.ClickHouse); err != nil {
			return err
		}
		cfg.UseServer = true
	}
	// Progress and incidents go to stdout; the components log warnings and errors only.
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return demo.Run(ctx, cfg, e.stdout, log)
}
