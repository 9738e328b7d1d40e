package canary

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/knob"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// BenchmarkDetectorLook times one look of the canary detector, with the
// shipped DetectorConfig, at a busy canary on ClickHouse: a recommendation
// model at FLEETWATCH_CANARY_BENCH_RATE requests/s (default 5,000), 5% of
// them on the canary, FLEETWATCH_CANARY_BENCH_MINUTES (default 60) into
// it, with 10 numeric and 2 categorical features per request and an
// engagement outcome for 5% of requests; an hour of baseline before it
// for the drift bins. Each look reads everything since the canary
// started (the Reader's queries), so its cost grows with the canary's age.
func BenchmarkDetectorLook(b *testing.B) {
	rate := int(knob.Int(b, "FLEETWATCH_CANARY_BENCH_RATE", 5000))
	minutes := int(knob.Int(b, "FLEETWATCH_CANARY_BENCH_MINUTES", 60))
	db := chtest.NewDB(b)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	start := t0.Add(-time.Hour)
	total := (60 + minutes) * 60 * rate
	database := db.Config().Database
	// Request i at start + i/rate s; after t0, every 20th is the canary's.
	ins := fmt.Sprintf(`INSERT INTO %[1]s.inference_events (ts, model, model_version, request_id, latency_ms, status,
	feature_names, feature_values, cat_feature_names, cat_feature_values, prediction, prediction_class)
SELECT toDateTime(%[2]d + intDiv(number, %[3]d)) AS t, 'ranker',
	if(t >= toDateTime(%[4]d) AND number %% 20 = 0, 'v8', 'v7'), toString(number),
	2 + (cityHash64(number) %% 1000) / 250, if(cityHash64(number, 1) %% 200 = 0, 'error', 'ok'),
	['f0','f1','f2','f3','f4','f5','f6','f7','f8','f9'],
	arrayMap(k -> (cityHash64(number, k) %% 10000) / 100, range(10)),
	['country','device'], [toString(cityHash64(number, 20) %% 30), toString(cityHash64(number, 21) %% 4)],
	(cityHash64(number, 30) %% 1000) / 1000, toString(cityHash64(number, 31) %% 5)
FROM numbers(%[5]d)`, database, start.Unix(), rate, t0.Unix(), total)
	if err := db.Exec(ctx, ins); err != nil {
		b.Fatal(err)
	}
	outcomes := fmt.Sprintf(`INSERT INTO %[1]s.business_outcomes (ts, model, model_version, request_id, outcome, success)
SELECT toDateTime(%[2]d + intDiv(number, %[3]d) + 5), 'ranker', '', toString(number), 'engagement', 1
FROM numbers(%[4]d) WHERE cityHash64(number, 40) %% 20 = 0`, database, start.Unix(), rate, total)
	if err := db.Exec(ctx, outcomes); err != nil {
		b.Fatal(err)
	}
	var dep storage.ModelDeploymentBlock
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "ranker", ModelVersion: "v8", PreviousVersion: "v7", Change: "canary"})
	chtest.Write(b, db, dep.Block())
	cat, err := catalog.Parse([]byte("model: {name: ranker, type: ranking, domain: recommendation}\n"))
	if err != nil {
		b.Fatal(err)
	}
	d, err := NewDetector(NewDefaultDetectorConfig(), db, cat, nil)
	if err != nil {
		b.Fatal(err)
	}
	deps, err := d.Canaries(ctx, t0.Add(time.Duration(minutes)*time.Minute))
	if err != nil || len(deps) != 1 {
		b.Fatalf("canaries %v: %v", deps, err)
	}
	at := t0.Add(time.Duration(minutes) * time.Minute)
	// The first look also reads the restarts' counts back (a detector
	// that starts on a running canary); time it on its own.
	first := time.Now()
	v, err := d.Judge(ctx, deps[0], at)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d requests since the canary started (%d canary); first look (with %d restarts read back) %v; verdict %s",
		minutes*60*rate, minutes*60*rate/20, min(minutes*60/int(DefaultEpoch.Seconds()), DefaultSegments), time.Since(first).Round(time.Millisecond), v.Outcome)
	// Each of a look's queries on its own.
	r := d.reader
	fb := d.running[deps[0].Key()].features
	edges := d.running[deps[0].Key()].edges
	for _, q := range []struct{ name, sql string }{
		{"counts", CountsSQL(database, "ranker", "v8", "v7", t0, at)},
		{"engagement", EngagementSQL(database, "ranker", "v8", "v7", r.Outcome, t0, at, r.OutcomeWindow)},
		{"accuracy", AccuracySQL(database, "ranker", "v8", "v7", t0, at)},
		{"predictions", PredictionCountsSQL(database, "ranker", "v8", "v7", edges, t0, at)},
		{"features", FeatureCountsSQL(database, "ranker", "v8", "v7", fb, t0, at)},
		{"categories", CategoryCountsSQL(database, "ranker", "v8", "v7", fb, t0, at)},
		{"features, binned with arrayCount", featureSeries.countsSQL(database, "ranker", "v8", "v7", fb.Names[:fb.Numeric], lambdaBin(fb.Edges[:fb.Numeric]), t0, at)},
		{"features, not binned", featureSeries.countsSQL(database, "ranker", "v8", "v7", fb.Names[:fb.Numeric], "0", t0, at)},
	} {
		began := time.Now()
		var n uint64
		if err := db.QueryScalar(ctx, "SELECT count() FROM ("+q.sql+")", &n); err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
		b.Logf("%-12s %v (%d rows)", q.name, time.Since(began).Round(time.Millisecond), n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := d.Judge(ctx, deps[0], at.Add(time.Duration(i+1)*10*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(minutes*60*rate)/1e6, "Mrequests")
}
