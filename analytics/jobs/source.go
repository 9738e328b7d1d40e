package jobs

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Metrics are the training metrics the detector reads.
var Metrics = []string{telemetry.TrainStepSeconds, telemetry.TrainSteps, telemetry.TrainCheckpoints,
	telemetry.TrainCheckpointFailures, telemetry.TrainCheckpointSeconds}

// Source reads a window's Input from ClickHouse in one query.
type Source struct {
	client   *storage.Client
	lookback time.Duration
}

// NewSource returns a source on c.
func NewSource(c *storage.Client, cfg Config) *Source {
	return &Source{client: c, lookback: cfg.StallLookback}
}

// RowsSQL aggregates every training series over the window, in the server:
// per series its points, mean, last value and increase in [start, end),
// and for the step counter, over the stall lookback before end, its first
// and last points and the last point that rose. Each series is joined to
// its job, rank and GPU in gpu_series.
func RowsSQL(db string, w fleet.Window, lookback time.Duration) string {
	start, end := chsql.Time(w.Start), chsql.Time(w.End)
	return fmt.Sprintf(`SELECT metric, job, s_rank, s_uuid, s_node, s_rack, s_row, s_datacenter,
    n, v_sum, v_last, v_delta, first_ts, last_ts, last_rise
FROM (
    SELECT metric, series, countIf(ts >= %[1]s) AS n, sumIf(value, ts >= %[1]s) AS v_sum,
        argMaxIf(value, ts, ts >= %[1]s) AS v_last, sumIf(delta, ts >= %[1]s) AS v_delta,
        toUInt32(min(ts)) AS first_ts, toUInt32(max(ts)) AS last_ts, toUInt32(maxIf(ts, delta > 0)) AS last_rise
    FROM %[3]s
    WHERE metric IN %[4]s AND ts < %[2]s AND (ts >= %[1]s OR (metric = %[5]s AND ts >= %[6]s))
    GROUP BY metric, series) AS s
ANY LEFT JOIN (
    SELECT series, job, label_values[indexOf(label_keys, 'rank')] AS s_rank, uuid AS s_uuid, node AS s_node,
        rack AS s_rack, row AS s_row, datacenter AS s_datacenter
    FROM %[7]s WHERE metric IN %[4]s) AS g USING series
WHERE n > 0`, start, end, chsql.Ident(db, "gpu_samples"), chsql.In(Metrics), chsql.String(telemetry.TrainSteps),
		chsql.Time(w.End.Add(-lookback)), chsql.Ident(db, "gpu_series"))
}

// Read runs RowsSQL for w and folds its rows per job and rank.
func (s *Source) Read(ctx context.Context, w fleet.Window) (*Input, error) {
	var f folder
	var res chsql.Result
	metric, job, rank, uuid := res.Str("metric"), res.Str("job"), res.Str("s_rank"), res.Str("s_uuid")
	node, rack, row, dc := res.Str("s_node"), res.Str("s_rack"), res.Str("s_row"), res.Str("s_datacenter")
	n, sum, last, delta := res.Int("n"), res.F64("v_sum"), res.F64("v_last"), res.F64("v_delta")
	first, lastTS, rise := res.Int("first_ts"), res.Int("last_ts"), res.Int("last_rise")
	err := res.ForRows(ctx, s.client, RowsSQL(s.client.Config().Database, w, s.lookback), func(r int) {
		f.add(Point{Metric: metric.At(r), Job: job.At(r), Rank: rank.At(r), GPU: uuid.At(r),
			Topology: fleet.Topology{Datacenter: dc.At(r), Row: row.At(r), Rack: rack.At(r), Node: node.At(r)},
			N:        int(n.At(r)), Sum: sum.At(r), Last: last.At(r), Delta: delta.At(r),
			First: unix(first.At(r)), LastPoint: unix(lastTS.At(r)), LastRise: unix(rise.At(r))})
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: read %v: %w", w, err)
	}
	return f.input(w), nil
}

func unix(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Point is one series' aggregate over a window, as RowsSQL returns it:
// its points in the window (N), their sum, last value and increase, and
// for the step counter its first, last and last rising point over the
// stall lookback.
type Point struct {
	Metric, Job, Rank, GPU string
	fleet.Topology
	N                          int
	Sum, Last, Delta           float64
	First, LastPoint, LastRise time.Time
}

// folder folds series aggregates into ranks.
type folder struct {
	ranks      []Rank
	at         map[[2]string]int
	stepSum    []float64
	stepN      []int
	unassigned map[string]int
}

// add folds one series; a rank with several series of one metric (new
// labels after a restart) sums its increases and points.
func (f *folder) add(p Point) {
	if f.at == nil {
		f.at, f.unassigned = map[[2]string]int{}, map[string]int{}
	}
	rank := p.Rank
	if rank == "" {
		rank = p.GPU
	}
	switch {
	case p.Job == "":
		f.unassigned[SkipNoJob]++
		return
	case rank == "":
		f.unassigned[SkipNoRank]++
		return
	}
	k := [2]string{p.Job, rank}
	i, ok := f.at[k]
	if !ok {
		i = len(f.ranks)
		f.at[k] = i
		f.ranks = append(f.ranks, Rank{Job: p.Job, Rank: rank, StepSeconds: math.NaN(), CheckpointSeconds: math.NaN()})
		f.stepSum, f.stepN = append(f.stepSum, 0), append(f.stepN, 0)
	}
	r := &f.ranks[i]
	if r.GPU == "" {
		r.GPU, r.Topology = p.GPU, p.Topology
	}
	switch p.Metric {
	case telemetry.TrainStepSeconds:
		f.stepSum[i] += p.Sum
		f.stepN[i] += p.N
		r.StepSeconds = f.stepSum[i] / float64(f.stepN[i])
	case telemetry.TrainSteps:
		r.Steps += p.Delta
		r.StepPoints += p.N
		r.FirstPoint = earliest(r.FirstPoint, p.First)
		r.LastPoint = latest(r.LastPoint, p.LastPoint)
		r.LastStep = latest(r.LastStep, p.LastRise)
	case telemetry.TrainCheckpoints:
		r.Checkpoints += p.Delta
	case telemetry.TrainCheckpointFailures:
		r.CheckpointFailures += p.Delta
	case telemetry.TrainCheckpointSeconds:
		r.CheckpointSeconds = p.Last
	}
}

// Fold folds series aggregates (RowsSQL's rows, or the same computed
// elsewhere) into a window's Input.
func Fold(w fleet.Window, points []Point) *Input {
	var f folder
	for _, p := range points {
		f.add(p)
	}
	return f.input(w)
}

func (f *folder) input(w fleet.Window) *Input {
	return &Input{Window: w, Ranks: f.ranks, Unassigned: f.unassigned}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
