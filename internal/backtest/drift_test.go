package backtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/backtest"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// driftScenario is one model whose pipeline shifts a feature after the
// default two-hour deployment reference window, on a one-GPU fleet.
const driftScenario = `
name: drift-backtest
seed: 5
duration: 3h
interval: 30s
fleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 1}
models:
  - name: fraud-detector
    pipeline: payments-features
    rps: 2
    features:
      - {name: amount, mean: 120, sd: 40}
      - {name: country, values: [DE, FR, US], probs: [0.5, 0.3, 0.2]}
faults:
  - {name: shift, type: covariate_drift, target: {pipeline: payments-features, feature: amount}, start: 2h20m, end: 3h}
`

// The drift detector replays too: it builds the model's reference profiles
// from the stored traffic, scores every window against them and flags the
// shifted feature only after the shift, writing profiles and scores to the
// target and nothing to the source.
func TestBacktestReplaysDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("three hours of stored traffic")
	}
	sc, err := sim.Parse([]byte(driftScenario))
	if err != nil {
		t.Fatal(err)
	}
	sc.Start = time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	src := chtest.NewDB(t)
	if _, err := score.Store(context.Background(), sc, src, score.StoreOptions{QueueDir: t.TempDir(), MaxAge: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg := analyzer.NewDefaultConfig()
	target := chtest.NewDB(t)
	shift := sc.Start.Add(2*time.Hour + 20*time.Minute)
	res, err := backtest.Run(context.Background(), backtest.Config{Analyzer: cfg, From: sc.Start, To: sc.Start.Add(sc.Duration)}, src, target, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	profiles, scores := count(t, target, "SELECT count() FROM DB.drift_profiles"), count(t, target, "SELECT count() FROM DB.drift_scores")
	t.Logf("drift: %d windows, %d profiles built, %d scores", res.Windows[cfg.Drift.Name].Evaluated, profiles, scores)
	if profiles == 0 || scores == 0 {
		t.Fatalf("the replay built %d profiles and wrote %d scores; want both", profiles, scores)
	}
	if n := count(t, src, "SELECT (SELECT count() FROM DB.drift_profiles) + (SELECT count() FROM DB.drift_scores)"); n != 0 {
		t.Errorf("the source got %d drift rows", n)
	}
	var before, after int
	for _, d := range res.Detections {
		if d.Class != "covariate_drift" || d.Feature != "amount" {
			continue
		}
		if d.WindowStart.Before(shift) {
			before++
		} else {
			after++
		}
	}
	t.Logf("amount flagged as covariate drift in %d windows before the shift, %d after", before, after)
	if after == 0 || before != 0 {
		t.Errorf("amount flagged in %d windows before the shift and %d after; want 0 and some", before, after)
	}
}
