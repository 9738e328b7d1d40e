package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
)

// Config tunes the training-job detector. The defaults are argued in
// analytics/README.md ("Training jobs").
type Config struct {
	// Name is the detector's name in the ledger, detections and job_health
	// (default "training_jobs").
	Name string `yaml:"name"`
	// Interval is the window length (default 1m). A window should hold a
	// few reports of every rank: with an OTel SDK's default 60 s export
	// interval, use 5m.
	Interval time.Duration `yaml:"interval"`
	// Lateness overrides the engine's lateness allowance (0: the engine's).
	Lateness time.Duration `yaml:"lateness"`

	// History is how many of the job's windows its step-time baseline
	// holds (default 30); MinHistory how many it needs before the
	// regression rule judges (default 10).
	History    int `yaml:"history"`
	MinHistory int `yaml:"min_history"`
	// StepRatio and MinZ: a window's step time is out of the baseline when
	// it is at least StepRatio times the baseline median (default 1.10)
	// and MinZ robust σ above it (default 5). RelFloor holds σ at least
	// this share of the median (default 0.01).
	StepRatio float64 `yaml:"step_ratio"`
	MinZ      float64 `yaml:"min_z"`
	RelFloor  float64 `yaml:"rel_floor"`
	// Persist windows out in a row raise a regression (default 2).
	Persist int `yaml:"persist"`
	// AdaptAfter: a step time (or checkpoint write time) that has stayed
	// out of its baseline this long becomes the job's new normal (default
	// 1h; at least MinHistory windows).
	AdaptAfter time.Duration `yaml:"adapt_after"`

	// A rank is stalled when its step counter has not risen for longer
	// than the largest of StallSteps × the job's median step time
	// (default 20), StallReports × the rank's report interval (default 3),
	// MinStall (default 2m) and StallCheckpoints × the job's longest write
	// among its recent checkpoints (default 2). StallLookback is how far
	// back the last step is looked for (default 30m; longer than any
	// threshold it should see).
	StallSteps       float64       `yaml:"stall_steps"`
	StallReports     float64       `yaml:"stall_reports"`
	MinStall         time.Duration `yaml:"min_stall"`
	StallCheckpoints float64       `yaml:"stall_checkpoints"`
	StallLookback    time.Duration `yaml:"stall_lookback"`

	// CheckpointHistory is how many earlier checkpoint write times the
	// baseline holds (default 20); MinCheckpoints how many it needs
	// (default 5). A write is slow when it is at least CheckpointRatio
	// times their median (default 2) and MinZ σ above it, σ at least
	// CheckpointRelFloor of the median (default 0.10). CheckpointAdapt
	// slow checkpoints in a row become the job's new normal (default 5).
	CheckpointHistory  int     `yaml:"checkpoint_history"`
	MinCheckpoints     int     `yaml:"min_checkpoints"`
	CheckpointRatio    float64 `yaml:"checkpoint_ratio"`
	CheckpointRelFloor float64 `yaml:"checkpoint_rel_floor"`
	CheckpointAdapt    int     `yaml:"checkpoint_adapt"`

	// Severity of each rule's detections.
	Severity Severities `yaml:"severity"`

	// ForgetAfter: a job without reports for this long is forgotten
	// (default 1h). RestoreLookback is how far back a restart reads
	// job_health for checkpoint history (default 24h).
	ForgetAfter     time.Duration `yaml:"forget_after"`
	RestoreLookback time.Duration `yaml:"restore_lookback"`
}

// Severities are the rules' detection severities. Under alerting's
// default open_severity (error), the error ones page.
type Severities struct {
	// Regression: the whole job steps slower than its history (default
	// error: every GPU of the job is paid for and does less).
	Regression string `yaml:"regression"`
	// Stall: ranks without a step (default error: the job burns its GPUs
	// doing nothing).
	Stall string `yaml:"stall"`
	// CheckpointSlow: the last checkpoint took much longer than the
	// job's earlier ones (default warning: time lost, no work at risk).
	CheckpointSlow string `yaml:"checkpoint_slow"`
	// CheckpointFailed: checkpoint writes failed and none completed since
	// (default error: a crash now loses everything since the last good one).
	CheckpointFailed string `yaml:"checkpoint_failed"`
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{
		Name: "training_jobs", Interval: time.Minute,
		History: 30, MinHistory: 10, StepRatio: 1.10, MinZ: 5, RelFloor: 0.01, Persist: 2, AdaptAfter: time.Hour,
		StallSteps: 20, StallReports: 3, MinStall: 2 * time.Minute, StallCheckpoints: 2, StallLookback: 30 * time.Minute,
		CheckpointHistory: 20, MinCheckpoints: 5, CheckpointRatio: 2, CheckpointRelFloor: 0.10, CheckpointAdapt: 5,
		Severity:    Severities{Regression: "error", Stall: "error", CheckpointSlow: "warning", CheckpointFailed: "error"},
		ForgetAfter: time.Hour, RestoreLookback: 24 * time.Hour,
	}
}

// adaptWindows is AdaptAfter in windows.
func (c Config) adaptWindows() int { return int(c.AdaptAfter / c.Interval) }

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := engine.CheckSchedule(c.Name, c.Interval, c.Lateness)
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.MinHistory < 3 || c.History < c.MinHistory {
		bad("min_history %d and history %d: want 3 ≤ min_history ≤ history", c.MinHistory, c.History)
	}
	if c.MinCheckpoints < 3 || c.CheckpointHistory < c.MinCheckpoints {
		bad("min_checkpoints %d and checkpoint_history %d: want 3 ≤ min_checkpoints ≤ checkpoint_history", c.MinCheckpoints, c.CheckpointHistory)
	}
	if c.StepRatio <= 1 || c.CheckpointRatio <= 1 {
		bad("step_ratio %v and checkpoint_ratio %v: want > 1 (a relative floor on the change)", c.StepRatio, c.CheckpointRatio)
	}
	if c.MinZ <= 0 {
		bad("min_z %v must be positive", c.MinZ)
	}
	if c.RelFloor <= 0 || c.RelFloor >= 1 || c.CheckpointRelFloor <= 0 || c.CheckpointRelFloor >= 1 {
		bad("rel_floor %v and checkpoint_rel_floor %v: want (0, 1), so that a steady history's spread cannot collapse", c.RelFloor, c.CheckpointRelFloor)
	}
	if c.Persist < 1 {
		bad("persist %d: want ≥ 1", c.Persist)
	}
	if c.Interval > 0 && c.adaptWindows() < c.MinHistory {
		bad("adapt_after %v is shorter than min_history (%d windows)", c.AdaptAfter, c.MinHistory)
	}
	if c.CheckpointAdapt < 1 {
		bad("checkpoint_adapt %d: want ≥ 1", c.CheckpointAdapt)
	}
	if c.StallSteps <= 1 || c.StallReports < 1 || c.StallCheckpoints < 1 || c.MinStall <= 0 {
		bad("stall_steps %v > 1, stall_reports %v ≥ 1, stall_checkpoints %v ≥ 1 and min_stall %v > 0 wanted", c.StallSteps, c.StallReports, c.StallCheckpoints, c.MinStall)
	}
	if c.StallLookback < 2*c.MinStall || c.StallLookback < c.Interval {
		bad("stall_lookback %v: want at least twice min_stall %v and one interval", c.StallLookback, c.MinStall)
	}
	for _, s := range []struct{ name, v string }{{"regression", c.Severity.Regression}, {"stall", c.Severity.Stall},
		{"checkpoint_slow", c.Severity.CheckpointSlow}, {"checkpoint_failed", c.Severity.CheckpointFailed}} {
		if s.v != "info" && s.v != "warning" && s.v != "error" && s.v != "critical" {
			bad("severity.%s %q: want info, warning, error or critical", s.name, s.v)
		}
	}
	if c.ForgetAfter < c.Interval || c.RestoreLookback < c.Interval {
		bad("forget_after %v and restore_lookback %v: want at least one interval", c.ForgetAfter, c.RestoreLookback)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}
