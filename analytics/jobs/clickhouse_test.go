package jobs_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// TestThroughClickHouse stores the jobs scenario through the real
// pipeline (the simulated fleet read by the agent's code, encoded by its
// OTLP encoder, written by the collector's exporter into a private
// ClickHouse) and runs the detector on it window by window, as the engine
// does: every job fault is found within a bounded number of windows, on
// its job only; the healthy job raises nothing; job_health holds a row per
// job and window; the in-memory path raises the same; and a detector
// restored from job_health in the middle of the faults carries on as the
// first one does.
func TestThroughClickHouse(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	sc, err := sim.Load("../../internal/testsupport/score/testdata/jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.NewDefaultConfig()
	sc.Start = time.Now().UTC().Add(-sc.Duration - 5*time.Minute).Truncate(cfg.Interval)
	truths, err := score.Store(ctx, sc, c, score.StoreOptions{QueueDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	det, err := jobs.NewDetector(cfg, c, c, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := det.Restore(ctx, fleet.Window{}); err != nil {
		t.Fatal(err)
	}
	end := sc.Start.Add(sc.Duration)
	var got []fleet.Detection
	var restored *jobs.Detector
	restoreAt := sc.Start.Add(27 * time.Minute) // the faults started 5 minutes before
	for w := fleet.Align(sc.Start, cfg.Interval); !w.End.After(end); w = (fleet.Window{Start: w.End, End: w.End.Add(cfg.Interval)}) {
		ds, err := det.Evaluate(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
		if restored != nil {
			rs, err := restored.Evaluate(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := keys(ds), keys(rs); !slices.Equal(a, b) {
				t.Errorf("window %v: restored detector raised %v, the first %v", w, b, a)
			}
		}
		if w.End.Equal(restoreAt) {
			if restored, err = jobs.NewDetector(cfg, c, c, chtest.Logger(t)); err != nil {
				t.Fatal(err)
			}
			if err := restored.Restore(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
	}

	rep := scoring.Score(truths, got, scoring.Options{Interval: cfg.Interval, Grace: 2 * cfg.Interval, RunEnd: end})
	t.Logf("through ClickHouse:\n%s", rep.Markdown())
	if len(rep.FalseAlarms) > 0 || len(rep.Missed) > 0 {
		t.Errorf("false alarms %v, missed %v", rep.FalseAlarms, rep.Missed)
	}
	// Within a bound per fault: a regression after persist windows, a hang
	// after min_stall, a checkpoint fault at the first checkpoint written
	// after it started (a period, a write in progress and the slow write).
	bounds := map[string]int{sim.FaultJobRegression: 3, sim.FaultRankHang: 4, sim.FaultCheckpointSlow: 5, sim.FaultCheckpointFailure: 4}
	for _, ts := range rep.Types {
		if ts.MaxWindows > bounds[ts.Type] {
			t.Errorf("%s found after %d windows, want at most %d", ts.Type, ts.MaxWindows, bounds[ts.Type])
		}
	}
	for _, d := range got {
		if d.Job == "healthy" {
			t.Errorf("the healthy job raised %s: %s", d.Feature, d.Summary)
		}
	}

	// One row per window (a replayed window's rows are the same row), and
	// the healthy job's goodput is the share of time not spent writing
	// checkpoints (15 s and more of every 2 min 15 s, a write ending at the
	// next report) at the pace of its slowest rank: about 0.85.
	windows := int(sc.Duration / cfg.Interval)
	var rows int64
	var mean float64
	q := fmt.Sprintf(`SELECT count() AS n, avgIf(g, isFinite(g)) AS mean_goodput
FROM (SELECT ts, any(goodput) AS g FROM %s.job_health WHERE job = 'healthy' GROUP BY ts) AS h`, c.Config().Database)
	var res chsql.Result
	n, avg := res.Int("n"), res.F64("mean_goodput")
	if err := res.ForRows(ctx, c, q, func(r int) { rows, mean = n.At(r), avg.At(r) }); err != nil {
		t.Fatal(err)
	}
	if rows != int64(windows) || mean < 0.8 || mean > 0.97 {
		t.Errorf("the healthy job has %d job_health windows (want %d), mean goodput %.3f (want about 0.85)", rows, windows, mean)
	}
	t.Logf("healthy job: mean goodput %.3f over %d windows", mean, rows)

	results, _, _ := simulate(t, sc, cfg)
	var mem []fleet.Detection
	for _, r := range results {
		mem = append(mem, r.Detections...)
	}
	if a, b := keys(got), keys(mem); !slices.Equal(a, b) {
		t.Errorf("ClickHouse path and in-memory path differ:\nclickhouse %q\nin memory  %q", a, b)
	}
	if math.IsNaN(det.Goodput()["healthy"]) {
		t.Error("no goodput for the healthy job")
	}
}

func keys(ds []fleet.Detection) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Key + "@" + d.WindowStart.UTC().Format(time.TimeOnly)
	}
	slices.Sort(out)
	return out
}
