package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Detector is the training-job fleet.Detector: it reads each window with
// a Source, judges it with an Evaluator and writes every job's Status to
// job_health before returning the detections.
type Detector struct {
	cfg    Config
	src    *Source
	eval   *Evaluator
	out    *storage.Client
	writer *storage.Writer
	log    *slog.Logger
}

// NewDetector validates cfg and returns the detector reading telemetry
// from in and writing job_health to out (the same client, or a backtest's
// results database).
func NewDetector(cfg Config, in, out *storage.Client, log *slog.Logger) (*Detector, error) {
	ev, err := NewEvaluator(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ev.SetLogger(log)
	w, err := out.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg, src: NewSource(in, cfg), eval: ev, out: out, writer: w, log: log}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Lateness implements fleet.LatenessOverride.
func (d *Detector) Lateness() time.Duration { return d.cfg.Lateness }

// Skipped returns the rules that could not run, per rule and reason.
func (d *Detector) Skipped() map[SkipKey]uint64 { return d.eval.Skipped() }

// Goodput returns each job's goodput in its last window with one.
func (d *Detector) Goodput() map[string]float64 { return d.eval.Goodput() }

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	in, err := d.src.Read(ctx, w)
	if err != nil {
		return nil, err
	}
	res := d.eval.Evaluate(in)
	if len(res.Jobs) > 0 {
		if err := d.writer.Write(ctx, Block(d.cfg.Name, w, res.Jobs)); err != nil {
			return nil, fmt.Errorf("write job_health: %w", err)
		}
	}
	return res.Detections, nil
}

// Block returns a window's job statuses as job_health rows.
func Block(detector string, w fleet.Window, jobs []Status) storage.Block {
	var b storage.JobHealthBlock
	for _, s := range jobs {
		b.Ts, b.WindowStart = append(b.Ts, w.End.Unix()), append(b.WindowStart, w.Start.Unix())
		b.Detector, b.Job, b.Ranks = append(b.Detector, detector), append(b.Job, s.Job), append(b.Ranks, uint32(s.Ranks))
		b.StepSeconds, b.BaselineStepSeconds, b.StepZ = append(b.StepSeconds, s.StepSeconds), append(b.BaselineStepSeconds, s.BaselineStep), append(b.StepZ, s.StepZ)
		b.Steps, b.Goodput = append(b.Steps, s.Steps), append(b.Goodput, s.Goodput)
		b.StalledRanks, b.StallSeconds = append(b.StalledRanks, uint32(s.Stalled)), append(b.StallSeconds, s.StallSeconds)
		b.Checkpoints, b.CheckpointSeconds = append(b.Checkpoints, s.Checkpoints), append(b.CheckpointSeconds, s.CheckpointSeconds)
		b.BaselineCheckpointSeconds = append(b.BaselineCheckpointSeconds, s.BaselineCheckpoint)
		b.CheckpointFailures, b.Flags = append(b.CheckpointFailures, s.Failures), append(b.Flags, s.Flags)
	}
	return b.Block()
}

// RestoreSQL reads a detector's job_health rows of (from, to], one per job
// and window, in order.
func RestoreSQL(db, detector string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT job, toUInt32(ts) AS t, toUInt32(window_start) AS t_start, step_seconds, checkpoints,
    checkpoint_seconds, baseline_checkpoint_seconds, checkpoint_failures, flags
FROM %s WHERE detector = %s AND ts > %s AND ts <= %s
ORDER BY job, ts LIMIT 1 BY job, ts`, chsql.Ident(db, schema.JobHealth.Name), chsql.String(detector), chsql.Time(from), chsql.Time(to))
}

// Restore implements fleet.Restorer: it rebuilds every job's baselines
// and checkpoint state from its job_health rows of the restore lookback
// up to last.
func (d *Detector) Restore(ctx context.Context, last fleet.Window) error {
	d.eval.Reset()
	if last.IsZero() {
		return nil
	}
	var rows []Row
	var res chsql.Result
	job, ts, start, step, ckpts := res.Str("job"), res.Int("t"), res.Int("t_start"), res.F64("step_seconds"), res.F64("checkpoints")
	ckptSec, ckptBase, fails, flags := res.F64("checkpoint_seconds"), res.F64("baseline_checkpoint_seconds"), res.F64("checkpoint_failures"), res.Int("flags")
	err := res.ForRows(ctx, d.out, RestoreSQL(d.out.Config().Database, d.cfg.Name, last.End.Add(-d.cfg.RestoreLookback), last.End), func(r int) {
		rows = append(rows, Row{Window: fleet.Window{Start: unix(start.At(r)), End: unix(ts.At(r))}, Status: Status{Job: job.At(r),
			StepSeconds: step.At(r), Checkpoints: ckpts.At(r), CheckpointSeconds: ckptSec.At(r), BaselineCheckpoint: ckptBase.At(r),
			Failures: fails.At(r), Flags: uint8(flags.At(r))}})
	})
	if err != nil {
		return fmt.Errorf("jobs: restore from job_health: %w", err)
	}
	d.eval.Restore(rows)
	d.log.Info("training-job state rebuilt", "detector", d.cfg.Name, "rows", len(rows), "up_to", last.End)
	return nil
}
