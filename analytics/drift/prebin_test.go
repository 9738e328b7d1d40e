package drift_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestPrebinnerCountsLikeTheKernels(t *testing.T) {
	num, err := profile.BuildNumeric([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, profile.BuildConfig{Bins: 4, TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := profile.BuildCategorical([]string{"a", "a", "b", "c"}, profile.BuildConfig{Bins: 4, TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range map[*profile.Profile]string{num: "x", cat: "k"} {
		p.Model, p.ModelVersion, p.Feature = "m", "v1", f
	}
	if _, err := profile.NewPrebinner([]*profile.Profile{{Model: "m", Kind: "weird"}}); err == nil {
		t.Error("an invalid profile was accepted")
	}
	pb, err := profile.NewPrebinner([]*profile.Profile{num, cat})
	if err != nil {
		t.Fatal(err)
	}
	batch := pb.NewBatch()
	xs := []float64{0.5, 3, 3, 9.5, 100, math.NaN(), 7}
	ks := []string{"a", "b", "zzz", "", "a", "a", "a"}
	for i := range xs {
		batch.Add(&fleet.InferenceEvent{Time: t0.Add(time.Duration(i) * 20 * time.Second), Model: "m", ModelVersion: "v1",
			FeatureNames: []string{"x", "unprofiled"}, FeatureValues: []float64{xs[i], 1}, CatFeatureNames: []string{"k"}, CatFeatureValues: []string{ks[i]}})
	}
	batch.Add(&fleet.InferenceEvent{Time: t0, Model: "m", ModelVersion: "v2", FeatureNames: []string{"x"}, FeatureValues: []float64{1}})
	if batch.Events != 7 || batch.Unprofiled != 1 {
		t.Fatalf("events %d, unprofiled %d", batch.Events, batch.Unprofiled)
	}
	// Expected counts per minute from the kernels themselves.
	want := map[[3]int64]int64{} // minute, feature (0 x, 1 k), bin -> count
	nb, _ := num.Binner()
	ci, _ := cat.CategoryIndex()
	for i := range xs {
		m := t0.Add(time.Duration(i)*20*time.Second).Unix() / 60 * 60
		bin := nb.Bin(xs[i])
		if bin < 0 {
			bin = num.Bins()
		}
		want[[3]int64{m, 0, int64(bin)}]++
		if bin = ci.Bin(ks[i]); bin < 0 {
			bin = cat.Bins()
		}
		want[[3]int64{m, 1, int64(bin)}]++
		want[[3]int64{m, 0, -1}]++
		want[[3]int64{m, 1, -1}]++
	}
	blk := storage.DriftBins(batch.Counts())
	got := map[[3]int64]int64{}
	ts, feats, fps := blk.Data[0].([]int64), blk.Data[3].([]string), blk.Data[4].([]uint64)
	bins, counts := blk.Data[5].([]int16), blk.Data[6].([]uint64)
	for r := range ts {
		f, fp := int64(0), num.Fingerprint()
		if feats[r] == "k" {
			f, fp = 1, cat.Fingerprint()
		}
		if fps[r] != fp {
			t.Errorf("row %d: fingerprint %x, want %x", r, fps[r], fp)
		}
		got[[3]int64{ts[r], f, int64(bins[r])}] += int64(counts[r])
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct rows, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("minute %d feature %d bin %d: %d, want %d", k[0], k[1], k[2], got[k], n)
		}
	}
}

// TestPrebinnedCountsEqualSQL runs the detector over the same window from
// drift_bins and from the SQL binning of inference_events, against real
// ClickHouse: every score is identical, and whatever drift_bins does not
// cover exactly (a version with no profile at ingest, a write counted
// twice, a window off the minute grid) is binned in SQL.
func TestPrebinnedCountsEqualSQL(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	db := c.Config().Database
	models := traffic.Fleet(3, 4)
	models[0].MissingRate = 0.05
	profiles, err := traffic.Profiles(99, 2000, models...)
	if err != nil {
		t.Fatal(err)
	}
	var atIngest []*profile.Profile // model-002's profiles did not exist yet at ingest
	for _, p := range profiles {
		if p.Model != "model-002" {
			atIngest = append(atIngest, p)
		}
	}
	pb, err := profile.NewPrebinner(atIngest)
	if err != nil {
		t.Fatal(err)
	}
	gen := traffic.New(5, models...)
	gen.Prebin = pb
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	if err := gen.Write(ctx, w, t0, minutes(10), 30*time.Second, 40, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, storage.DriftProfilesBlock(profiles)); err != nil {
		t.Fatal(err)
	}

	evaluate := func(prebinned bool, win fleet.Window) map[string]uint64 {
		t.Helper()
		cfg := drift.NewDefaultConfig()
		cfg.Prebinned = prebinned
		d, err := drift.NewDetector(cfg, c, nil, chtest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Restore(ctx, fleet.Window{}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Evaluate(ctx, win); err != nil {
			t.Fatal(err)
		}
		return d.Stats()
	}
	type score struct {
		counts []float64
		psi    float64
	}
	scores := func(win fleet.Window) map[string][]score {
		t.Helper()
		out := map[string][]score{}
		var res chsql.Result
		model, feature, counts, psi := res.Str("model"), res.Str("feature"), res.Floats("cur_counts"), res.F64("psi")
		err := res.ForRows(ctx, c, "SELECT model, feature, cur_counts, psi FROM "+db+".drift_scores WHERE ts = "+chsql.Time(win.End),
			func(r int) {
				k := model.At(r) + "/" + feature.At(r)
				out[k] = append(out[k], score{counts.At(r), psi.At(r)})
			})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(name string, win fleet.Window, wantPrebinned, wantSQL uint64) {
		t.Helper()
		sql := evaluate(false, win)
		want := scores(win)
		if len(want) != len(profiles) {
			t.Fatalf("%s: %d columns scored in SQL, want %d", name, len(want), len(profiles))
		}
		st := evaluate(true, win)
		if st["tests"] != uint64(len(profiles)) || sql["tests"] != uint64(len(profiles)) {
			t.Errorf("%s: %d columns tested from drift_bins, %d in SQL, want %d", name, st["tests"], sql["tests"], len(profiles))
		}
		if st["versions_prebinned"] != wantPrebinned || st["versions_binned_in_sql"] != wantSQL || sql["versions_prebinned"] != 0 {
			t.Errorf("%s: %d versions from drift_bins and %d in SQL, want %d and %d", name,
				st["versions_prebinned"], st["versions_binned_in_sql"], wantPrebinned, wantSQL)
		}
		for k, ss := range scores(win) {
			for _, s := range ss {
				if !slices.Equal(s.counts, want[k][0].counts) || s.psi != want[k][0].psi {
					t.Errorf("%s: %s scored %v (psi %v) from drift_bins, %v (psi %v) in SQL", name, k, s.counts, s.psi, want[k][0].counts, want[k][0].psi)
				}
			}
		}
	}
	check("first window", fleet.Window{Start: t0, End: minutes(5)}, 2, 1)

	// A write counted twice (a retried push) takes that version to SQL.
	dup := "INSERT INTO " + db + ".drift_bins SELECT * FROM " + db + ".drift_bins WHERE model = 'model-001' AND ts = " + chsql.Time(minutes(6))
	if err := c.Exec(ctx, dup); err != nil {
		t.Fatal(err)
	}
	check("second window", fleet.Window{Start: minutes(5), End: minutes(10)}, 1, 2)
	if t.Failed() {
		return
	}
	check("off the minute grid", fleet.Window{Start: minutes(2).Add(30 * time.Second), End: minutes(7).Add(30 * time.Second)}, 0, 0)
}
