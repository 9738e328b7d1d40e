package drift_test

import (
	"context"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func minutes(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func newDetector(t *testing.T, c *storage.Client) *drift.Detector {
	t.Helper()
	cfg := drift.NewDefaultConfig()
	cfg.DeploymentReference = 30 * time.Minute
	d, err := drift.NewDetector(cfg, c, nil, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func step(t *testing.T, c *storage.Client, clock engine.Clock, d fleet.Detector) {
	t.Helper()
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	cfg := engine.NewDefaultConfig()
	cfg.StartAt = t0
	e, err := engine.New(cfg, c, engine.WithClock(clock), engine.WithLogger(chtest.Logger(t)), engine.WithSink(engine.NewDetectionTable(w)))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Add(d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The drift detector against real ClickHouse: profiles from each version's
// first 30 minutes (deployment marker or first event), pushed-down binning
// identical to binning in Go, the shifted feature flagged in every window
// and nothing else, and a restart that reuses profiles and CUSUM state.
func TestDriftDetectorOnTraffic(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	gen := traffic.New(3, traffic.Fleet(2, 3)...)
	gen.Models[0].MissingRate = 0.02
	gen.Faults.Shift = func(m, f string, ts time.Time) float64 {
		if m == "model-000" && f == "f001" && !ts.Before(minutes(60)) {
			return 1
		}
		return 0
	}
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	var dep storage.ModelDeploymentBlock
	dep.Append(&storage.ModelDeployment{Time: t0.Add(-2 * time.Minute), Model: "model-000", ModelVersion: "v1", Change: "deploy"})
	if err := w.Write(ctx, dep.Block()); err != nil {
		t.Fatal(err)
	}
	if err := gen.Write(ctx, w, t0, minutes(90), time.Minute, 100, 0); err != nil {
		t.Fatal(err)
	}

	// First process: windows up to 0:55 (the reference closes at 0:28/0:30).
	clock := engine.NewManualClock(minutes(57))
	d1 := newDetector(t, c)
	step(t, c, clock, d1)
	ps := d1.Profiles("model-000", "v1")
	var names []string
	for _, p := range ps {
		names = append(names, p.Feature)
		if p.Source != profile.SourceDeployment || !p.RefStart.Equal(t0.Add(-2*time.Minute)) || !p.CreatedAt.Equal(minutes(28)) {
			t.Errorf("%s: source %s, reference %v–%v, created %v", p.Feature, p.Source, p.RefStart, p.RefEnd, p.CreatedAt)
		}
	}
	if !slices.Equal(names, []string{"@prediction", "f000", "f001", "f002", "@prediction_class", "country"}) {
		t.Fatalf("model-000 profiles: %v", names)
	}
	if p := d1.Profiles("model-001", "v1"); len(p) != 6 || !p[0].RefStart.Equal(t0) {
		t.Fatalf("model-001 profiles from its first event: %d, %v", len(p), p)
	}

	// The profile ClickHouse built equals the one Go builds from the same values.
	var vals []float64
	var res chsql.Result
	v := res.F64("v")
	err := res.ForRows(ctx, c, "SELECT v FROM "+c.Config().Database+".inference_events ARRAY JOIN feature_names AS n, feature_values AS v "+
		"WHERE model = 'model-000' AND n = 'f001' AND ts < "+chsql.Time(minutes(28)), func(r int) {
		vals = append(vals, v.At(r))
	})
	if err != nil {
		t.Fatal(err)
	}
	goProfile, err := profile.BuildNumeric(vals, profile.NewDefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	f001 := ps[2]
	if !slices.Equal(f001.Edges, goProfile.Edges) || !slices.Equal(f001.Counts, goProfile.Counts) || f001.Missing != goProfile.Missing {
		t.Fatalf("ClickHouse profile %v %v missing %v\nGo profile         %v %v missing %v",
			f001.Edges, f001.Counts, f001.Missing, goProfile.Edges, goProfile.Counts, goProfile.Missing)
	}
	if f001.Missing == 0 {
		t.Fatal("no missing values in the reference; the test lost its NaNs")
	}

	// Second process: profiles and CUSUMs come back; nothing is rebuilt.
	restored := newDetector(t, c)
	if err := restored.Restore(ctx, fleet.Window{Start: minutes(50), End: minutes(55)}); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(ps, d1.Profiles("model-001", "v1")...) {
		want, ok1 := d1.Sequential(p.Key())
		got, ok2 := restored.Sequential(p.Key())
		if !ok1 || !ok2 || got != want {
			t.Errorf("%s: CUSUM restored as %+v (%v), was %+v (%v)", p.Key(), got, ok2, want, ok1)
		}
	}
	clock.Set(minutes(92))
	d2 := newDetector(t, c)
	step(t, c, clock, d2)
	if n := d2.Stats()["profiles_built"]; n != 0 {
		t.Fatalf("restart rebuilt %d profiles", n)
	}
	db := c.Config().Database
	var rows uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM "+db+".drift_profiles", &rows); err != nil || rows != 12 {
		t.Fatalf("%d profile rows (%v)", rows, err)
	}

	type det struct {
		ts              int64
		detector, sev   string
		model, feature  string
		psi, p, qthresh float64
	}
	var got []det
	var dets chsql.Result
	ts, detector, sev, model, feature := dets.Int("t"), dets.Str("detector"), dets.Str("severity"), dets.Str("model"), dets.Str("feature")
	value, p := dets.F64("value"), dets.F64("p_value")
	err = dets.ForRows(ctx, c, "SELECT toUInt32(ts) AS t, detector, severity, model, feature, value, p_value FROM "+db+".detections FINAL ORDER BY ts", func(r int) {
		got = append(got, det{ts: ts.At(r), detector: detector.At(r), sev: sev.At(r),
			model: model.At(r), feature: feature.At(r), psi: value.At(r), p: p.At(r)})
	})
	if err != nil {
		t.Fatal(err)
	}
	flagged := map[int64]bool{}
	for _, g := range got {
		if g.model != "model-000" || g.feature != "f001" {
			t.Errorf("false detection: %+v", g)
			continue
		}
		if g.detector != "psi" || g.sev != "critical" || g.psi < 0.25 || g.p > 1e-6 {
			t.Errorf("weak detection of a 1σ shift: %+v", g)
		}
		flagged[g.ts] = true
	}
	for win := 65; win <= 90; win += 5 {
		if !flagged[minutes(win).Unix()] {
			t.Errorf("window ending %v: shift not detected", minutes(win).Format("15:04"))
		}
	}
	if len(flagged) != 6 {
		t.Errorf("flagged %d windows, want the 6 after the shift", len(flagged))
	}
	// Every tested column has a score per window; scores carry sample sizes.
	var scores uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM "+db+".drift_scores WHERE model = 'model-000' AND feature = 'f000' AND n_cur = 500 AND method = 'chi2'", &scores); err != nil || scores != 13 {
		t.Fatalf("f000 has %d scores over the 13 windows 0:30–1:30 (%v)", scores, err)
	}
	var missing float64
	if err := c.QueryScalar(ctx, "SELECT avg(missing_cur) FROM "+db+".drift_scores WHERE model = 'model-000' AND feature = 'f000'", &missing); err != nil || math.Abs(missing-0.02) > 0.01 {
		t.Fatalf("missing share %v (%v)", missing, err)
	}
}
