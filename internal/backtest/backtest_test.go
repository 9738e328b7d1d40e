package backtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/backtest"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// stored is the mixed scenario (one fault of every GPU type, 64 GPUs, 12
// minutes) stored ten days back — beyond the collector's default age
// limit, as a backfill — through the agent's encoder and the collector's
// exporter.
func stored(t *testing.T) (*storage.Client, *sim.Scenario, []sim.Truth) {
	t.Helper()
	sc, err := sim.Load("../testsupport/score/testdata/mixed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Start = time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	src := chtest.NewDB(t)
	truths, err := score.Store(context.Background(), sc, src, score.StoreOptions{QueueDir: t.TempDir(), MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return src, sc, truths
}

func count(t *testing.T, c *storage.Client, sql string) uint64 {
	t.Helper()
	var n uint64
	if err := c.QueryScalar(context.Background(), strings.ReplaceAll(sql, "DB.", c.Config().Database+"."), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The shipped analyzer defaults replay the stored range into a database of
// their own: every injected fault is detected and pages once, at its
// level (or raises only warnings, which do not page); no window after the
// range's end is evaluated, no telemetry gap pages; the source database
// gets nothing. A second run whose range
// reaches past the end of the data behaves as the live analyzer would: the
// fleet falling silent is one telemetry-pipeline incident, not a page per
// GPU.
func TestBacktestScoresInjectedFaults(t *testing.T) {
	src, sc, truths := stored(t)
	ctx := context.Background()
	from, to := sc.Start, sc.Start.Add(sc.Duration)
	cfg := analyzer.NewDefaultConfig()
	target := chtest.NewDB(t)
	profilesBefore := count(t, src, "SELECT count() FROM DB.drift_profiles")
	res, err := backtest.Run(ctx, backtest.Config{Analyzer: cfg, From: from, To: to}, src, target, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	iv := cfg.Health.Interval
	if st := res.Windows[cfg.Health.Name]; st.Evaluated != uint64(sc.Duration/iv) || !st.LastWindowEnd.Equal(to) {
		t.Errorf("fleet_health: %d windows up to %v, want %d up to %v", st.Evaluated, st.LastWindowEnd, sc.Duration/iv, to)
	}
	if res.LastWindowEnd.After(to) {
		t.Errorf("a window ending %v was evaluated, after the end %v", res.LastWindowEnd, to)
	}
	if n := count(t, target, "SELECT count() FROM DB.analyzer_windows WHERE window_end > "+chsql.Time(to)); n != 0 {
		t.Errorf("%d windows after the end in the ledger", n)
	}
	if n := count(t, target, "SELECT count() FROM DB.detections"); n != uint64(len(res.Detections)) || n == 0 {
		t.Errorf("%d detections in the target database, %d raised", n, len(res.Detections))
	}
	if n := count(t, src, "SELECT (SELECT count() FROM DB.detections) + (SELECT count() FROM DB.analyzer_windows) + (SELECT count() FROM DB.incidents) + (SELECT count() FROM DB.drift_scores)"); n != 0 {
		t.Errorf("the source database got %d result rows", n)
	}
	if n := count(t, src, "SELECT count() FROM DB.drift_profiles"); n != profilesBefore {
		t.Errorf("the source's drift profiles went from %d to %d", profilesBefore, n)
	}
	if st := res.Windows[cfg.Drift.Name]; st.Evaluated == 0 {
		t.Errorf("the drift detector evaluated no window: %+v", res.Windows)
	}
	t.Logf("drift: %d windows; target: %d profiles built, %d drift scores", res.Windows[cfg.Drift.Name].Evaluated,
		count(t, target, "SELECT count() FROM DB.drift_profiles"), count(t, target, "SELECT count() FROM DB.drift_scores"))
	if n := count(t, target, "SELECT count(DISTINCT key) FROM DB.incidents"); n != uint64(len(res.Incidents)) {
		t.Errorf("%d incidents stored, %d paged", n, len(res.Incidents))
	}
	if !res.DataEnd.After(to.Add(-time.Minute)) || res.DataEnd.After(to) {
		t.Errorf("data end %v, want within the last minute before %v", res.DataEnd, to)
	}

	o := scoring.Options{Interval: iv, Grace: 2 * iv, RunEnd: to}
	rep := scoring.Score(truths, res.Detections, o)
	pages := scoring.Pages(truths, res.Pages, o)
	t.Logf("backtest of %v in %v:\n%s\n%s", sc.Duration, res.Elapsed.Round(time.Millisecond), rep.Markdown(), pages.Markdown())
	for _, p := range res.Pages {
		t.Logf("page at %s: %s (%s)", p.Time.UTC().Format(time.TimeOnly), p.Incident.Key, p.Incident.Severity)
	}
	if rep.Total.Precision < 0.95 || rep.Total.Recall < 0.95 || rep.Total.MaxWindows > 3 {
		t.Errorf("precision %.3f, recall %.3f, slowest %d windows; missed %v, false %v",
			rep.Total.Precision, rep.Total.Recall, rep.Total.MaxWindows, rep.Missed, rep.FalseAlarms)
	}
	// Every fault pages once, at its level; the ECC ramp through its
	// uncorrectable error, a definitive event that opens in its first
	// window (alerting's open_at_once).
	for _, c := range pages.Causes {
		if c.Pages != 1 || !c.LevelOK {
			t.Errorf("%s: %d pages at %v, want one at %s", c.Fault, c.Pages, c.Levels, c.WantLevel)
		}
	}
	if len(pages.Unexplained) > 0 {
		t.Errorf("pages matching no fault: %v", pages.Unexplained)
	}
	for _, inc := range res.Incidents {
		if inc.Class == "telemetry_gap" {
			t.Errorf("telemetry-gap incident %s inside the data's range", inc.Key)
		}
	}

	// Past the end of the data: the silence is one pipeline incident.
	late := chtest.NewDB(t)
	res2, err := backtest.Run(ctx, backtest.Config{Analyzer: cfg, From: from, To: to.Add(5 * time.Minute)}, src, late, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var gaps []string
	for _, p := range res2.Pages {
		if p.Incident.Class == "telemetry_gap" {
			gaps = append(gaps, p.Incident.Key)
		}
	}
	if len(gaps) != 1 || len(res2.Pages) > len(res.Pages)+1 {
		t.Errorf("after the data ends: telemetry-gap pages %v and %d pages in all (%d before); want one gap page", gaps, len(res2.Pages), len(res.Pages))
	}

	// A target that already holds a run is refused.
	if _, err := backtest.Run(ctx, backtest.Config{Analyzer: cfg, From: from, To: to}, src, target, chtest.Logger(t)); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("second run into the same target: %v", err)
	}
}
