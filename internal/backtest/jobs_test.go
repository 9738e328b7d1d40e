package backtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/backtest"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// Training-job faults through the whole analyzer with the shipped
// defaults: each job is one incident at level job, owned by the job's
// team, however many rules and ranks its evidence spans. Regressions,
// hangs and failing checkpoints page once; a slow checkpoint is a warning
// that does not page; the healthy job and the hardware raise no page.
func TestJobFaultsPageOncePerJob(t *testing.T) {
	sc, err := sim.Load("../testsupport/score/testdata/jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sc.Start = time.Now().UTC().Add(-sc.Duration - 5*time.Minute).Truncate(time.Minute)
	src := chtest.NewDB(t)
	truths, err := score.Store(ctx, sc, src, score.StoreOptions{QueueDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := analyzer.NewDefaultConfig()
	from, to := sc.Start, sc.Start.Add(sc.Duration)
	res, err := backtest.Run(ctx, backtest.Config{Analyzer: cfg, From: from, To: to}, src, chtest.NewDB(t), chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	o := scoring.Options{Interval: cfg.Jobs.Interval, Grace: 2 * cfg.Jobs.Interval, RunEnd: to}
	pages := scoring.Pages(truths, res.Pages, o)
	t.Logf("pages:\n%s", pages.Markdown())
	for _, c := range pages.Causes {
		want := 1
		if c.Type == sim.FaultCheckpointSlow {
			want = 0 // a warning
		}
		if c.Pages != want || (want > 0 && !c.LevelOK) {
			t.Errorf("%s: %d pages at %v, want %d at level job", c.Fault, c.Pages, c.Levels, want)
		}
	}
	if len(pages.Unexplained) > 0 {
		t.Errorf("pages matching no fault: %v", pages.Unexplained)
	}
	for _, p := range res.Pages {
		inc := p.Incident
		if inc.Level != incident.LevelJob || inc.Family != "training_job" || inc.Team != "ml-platform" || inc.Key != "training_job/job/"+inc.Scope {
			t.Errorf("page %s: level %s, family %s, team %s", inc.Key, inc.Level, inc.Family, inc.Team)
		}
	}
}
