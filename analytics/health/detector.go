package health

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Detector is the fleet-health fleet.Detector: it reads each window with
// a Source and evaluates it with an Evaluator.
type Detector struct {
	cfg  Config
	src  *Source
	eval *Evaluator
	log  *slog.Logger
}

// NewDetector validates cfg and returns the detector reading from c.
func NewDetector(cfg Config, c *storage.Client, log *slog.Logger) (*Detector, error) {
	ev, err := NewEvaluator(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ev.SetLogger(log)
	return &Detector{cfg: cfg, src: NewSource(c, cfg), eval: ev, log: log}, nil
}

// Skipped returns the evaluator's counts of rules that could not run, per
// rule and reason.
func (d *Detector) Skipped() map[SkipKey]uint64 { return d.eval.Skipped() }

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Lateness implements fleet.LatenessOverride.
func (d *Detector) Lateness() time.Duration { return d.cfg.Lateness }

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	in, err := d.src.Read(ctx, w)
	if err != nil {
		return nil, err
	}
	return d.eval.Evaluate(in), nil
}

// Restore implements fleet.Restorer: it replays the Warmup windows up to
// last, without raising anything, so that persistence and baselines are
// as they were when the analyzer stopped.
func (d *Detector) Restore(ctx context.Context, last fleet.Window) error {
	if last.IsZero() || d.cfg.Warmup == 0 {
		return nil
	}
	iv := d.cfg.Interval
	for k := d.cfg.Warmup - 1; k >= 0; k-- {
		w := fleet.Window{Start: last.Start.Add(-time.Duration(k) * iv), End: last.End.Add(-time.Duration(k) * iv)}
		in, err := d.src.Read(ctx, w)
		if err != nil {
			return fmt.Errorf("health: warm up: %w", err)
		}
		d.eval.Evaluate(in)
	}
	d.log.Info("fleet health state rebuilt", "detector", d.cfg.Name, "windows", d.cfg.Warmup, "up_to", last.End)
	return nil
}
