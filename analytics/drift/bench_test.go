package drift_test

import (
	"context"
	"math/rand/v2"
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

const (
	fleetModels   = 100
	fleetFeatures = 100
	fleetEvents   = 10_000
)

// BenchmarkFleetDriftPass is one drift pass over a 5-minute window of 100
// models × 100 numeric features (+ a categorical feature and both outputs)
// × 10,000 events: 1M events and 100M feature values in ClickHouse 18.16,
// end to end: the active-versions query, the binning, 10,300 PSI tests,
// Benjamini–Hochberg, CUSUMs, and writing 10,300 drift_scores rows. The
// events are written as the collector writes them: inference_events plus
// their ingest-time counts in drift_bins. "drift_bins" is the detector's
// default (one query summing drift_bins); "sql" turns that off and bins
// inference_events in ClickHouse, two queries per model version.
// Sub-benchmarks split the time: the ingest binning alone (what the
// collector spends), the SQL binning queries alone, and the Go statistics
// alone.
func BenchmarkFleetDriftPass(b *testing.B) {
	c := chtest.NewDB(b)
	ctx := context.Background()
	models := traffic.Fleet(fleetModels, fleetFeatures)
	// Profiles as a training-data file would give them.
	profiles, err := traffic.Profiles(99, 2000, models...)
	if err != nil {
		b.Fatal(err)
	}
	pb, err := profile.NewPrebinner(profiles)
	if err != nil {
		b.Fatal(err)
	}
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	win := fleet.Window{Start: t0, End: t0.Add(5 * time.Minute)}
	t1 := time.Now()
	for m := range models { // 10 models per INSERT keeps the client's memory small
		if m%10 != 0 {
			continue
		}
		sub := traffic.New(uint64(m), models[m:m+10]...)
		sub.Prebin = pb
		if err := sub.Write(ctx, w, win.Start, win.End, 5*time.Minute, fleetEvents, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+c.Config().Database+".inference_events FINAL"); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d events in %v", fleetModels*fleetEvents, time.Since(t1))
	if err := w.Write(ctx, storage.DriftProfilesBlock(profiles)); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name      string
		prebinned bool
	}{{"drift_bins", true}, {"sql", false}} {
		b.Run("end-to-end/"+mode.name, func(b *testing.B) {
			cfg := drift.NewDefaultConfig()
			cfg.Prebinned = mode.prebinned
			d, err := drift.NewDetector(cfg, c, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := d.Restore(ctx, fleet.Window{}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Evaluate(ctx, win); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := d.Stats()
			if n := st["tests"]; n != uint64(b.N*len(profiles)) {
				b.Fatalf("%d tests, want %d", n, b.N*len(profiles))
			}
			if mode.prebinned && st["versions_prebinned"] != uint64(b.N*fleetModels) {
				b.Fatalf("%d versions from drift_bins, want all %d", st["versions_prebinned"], b.N*fleetModels)
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
		})
	}
	b.Run("ingest-binning", func(b *testing.B) {
		gen := traffic.New(1, models[:10]...)
		var ev storage.InferenceEventBlock
		var events []*fleet.InferenceEvent
		gen.Each = func(e *fleet.InferenceEvent) { events = append(events, e) }
		gen.Events(&ev, nil, win.Start, win.End, 1000, 0)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			batch := pb.NewBatch()
			for _, e := range events {
				batch.Add(e)
			}
			if blk := storage.DriftBins(batch.Counts()); len(blk.Data) == 0 {
				b.Fatal("no block")
			}
		}
		values := float64(len(events)) * float64(fleetFeatures+3)
		b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/values, "ns/value")
	})
	byModel := map[string][]*profile.Profile{}
	for _, p := range profiles {
		byModel[p.Model] = append(byModel[p.Model], p)
	}
	b.Run("sql-only/concurrency=2", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sem := make(chan struct{}, 2)
			errs := make(chan error, len(models))
			for _, m := range models {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					var num, cat []*profile.Profile
					for _, p := range byModel[m.Name] {
						if p.Kind == profile.Numeric {
							num = append(num, p)
						} else {
							cat = append(cat, p)
						}
					}
					db := c.Config().Database
					err := new(chsql.Result).ForRows(ctx, c, drift.NumericCountsSQL(db, m.Name, m.Version, win, num), func(int) {})
					if err == nil {
						err = new(chsql.Result).ForRows(ctx, c, drift.CategoricalCountsSQL(db, m.Name, m.Version, win, cat), func(int) {})
					}
					errs <- err
				}()
			}
			for range models {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
	})
	b.Run("go-stats-only", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 1))
		hists := make([][]float64, len(profiles))
		for i, p := range profiles {
			h := make([]float64, p.Bins()+1)
			for k := range h[:p.Bins()] {
				h[k] = p.Counts[k]*float64(fleetEvents)/p.N() + float64(r.IntN(20))
			}
			hists[i] = h
		}
		tester, _ := drift.NewTester(drift.NewDefaultTestConfig())
		ps := make([]float64, len(profiles))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for j, p := range profiles {
				res, err := tester.Test(p, hists[j])
				if err != nil {
					b.Fatal(err)
				}
				ps[j] = res.PValue
			}
			drift.BenjaminiHochberg(ps, 0.01)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
	})
}
