package collector_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/examples/modelservice"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// With drift profiles stored, the collector bins each inference event's
// features into them on the way in and writes drift_bins next to
// inference_events: the events tally and the counts per bin are the
// kernels' own on the same values.
func TestInferenceFeaturesAreBinnedAtIngest(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	var ref []float64
	for x := 40.0; x <= 100; x++ {
		ref = append(ref, x)
	}
	amount, err := profile.BuildNumeric(ref, profile.NewDefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	country, err := profile.BuildCategorical([]string{"DE", "DE", "FR"}, profile.NewDefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	amount.Feature, country.Feature = "amount", "country"
	for _, p := range []*profile.Profile{amount, country} {
		p.Model, p.ModelVersion, p.Source = "fraud-detector", "v7", profile.SourceFile
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, storage.DriftProfilesBlock([]*profile.Profile{amount, country})); err != nil {
		t.Fatal(err)
	}

	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	svc, err := modelservice.New(ctx, modelservice.Config{Endpoint: col.endpoint, Model: "fraud-detector", Version: "v7", Cluster: "c", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	var amounts []float64
	for i := 0; i < 30; i++ {
		amounts = append(amounts, float64(20+3*i)) // below, inside and above the reference
		if _, err := svc.Predict(ctx, modelservice.Request{Amount: amounts[i], Country: []string{"DE", "FR", "US"}[i%3]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tally := func() uint64 {
		var n uint64
		if err := db.QueryScalar(ctx, "SELECT sum(count) FROM drift_bins WHERE feature = 'amount' AND bin = -1", &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, 30*time.Second, "30 events in drift_bins", func() bool { return tally() == 30 })

	binner, _ := amount.Binner()
	want := map[string]map[int64]int64{"amount": {}, "country": {0: 10, 1: 10, 2: 10}} // DE, FR, other
	for _, a := range amounts {
		want["amount"][int64(binner.Bin(a))]++
	}
	got := map[string]map[int64]int64{"amount": {}, "country": {}}
	fps := map[string]uint64{"amount": amount.Fingerprint(), "country": country.Fingerprint()}
	var res chsql.Result
	feature, profile, bin, n := res.Str("feature"), res.Int("profile"), res.Int("bin"), res.Int("n")
	err = res.ForRows(ctx, db, "SELECT feature, profile, bin, sum(count) AS n FROM "+db.Config().Database+".drift_bins WHERE bin >= 0 GROUP BY feature, profile, bin",
		func(r int) {
			f := feature.At(r)
			if uint64(profile.At(r)) != fps[f] {
				t.Errorf("%s binned with profile %x, want %x", f, uint64(profile.At(r)), fps[f])
			}
			got[f][bin.At(r)] = n.At(r)
		})
	if err != nil {
		t.Fatal(err)
	}
	for f, bins := range want {
		if len(got[f]) != len(bins) {
			t.Errorf("%s: bins %v, want %v", f, got[f], bins)
		}
		for b, n := range bins {
			if got[f][b] != n {
				t.Errorf("%s bin %d: %d, want %d", f, b, got[f][b], n)
			}
		}
	}
	if len(want["amount"]) < 3 {
		t.Fatalf("the amounts cover only bins %v", want["amount"])
	}
}
