package canary

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// TestReaderOnInferenceEvents: per-version counts read from a real
// ClickHouse over the canary's minutes, judged. The canary (v8) is three
// times slower and fails 4% of its requests against the baseline's 0.5%.
func TestReaderOnInferenceEvents(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	start := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var b storage.InferenceEventBlock
	id := 0
	add := func(ts time.Time, version string, lat float64, failed bool) {
		status := "ok"
		if failed {
			status = "error"
		}
		id++
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: version, RequestID: fmt.Sprint(id), LatencyMs: lat, Status: status})
	}
	// Before the canary (not counted), then 5 minutes: per second 19
	// baseline and 1 canary request; another model alongside.
	add(start.Add(-time.Minute), "v8", 1000, true)
	for s := range 300 {
		ts := start.Add(time.Duration(s) * time.Second)
		for k := range 19 {
			add(ts, "v7", 10+float64(k), (s*19+k)%200 == 0)
		}
		add(ts, "v8", 30+float64(s%19)*3, s%25 == 0)
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "fraud", ModelVersion: "v8", RequestID: fmt.Sprint("f", s), LatencyMs: 1, Status: "error"})
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	o, err := NewReader(db).Observe(ctx, "ranker", "v8", "v7", start, start.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if o.Canary.Requests != 300 || o.Canary.Errors != 12 || o.Baseline.Requests != 5700 || o.Baseline.Errors != 29 {
		t.Errorf("counts canary %d/%d baseline %d/%d, want 300/12 and 5700/29", o.Canary.Errors, o.Canary.Requests, o.Baseline.Errors, o.Baseline.Requests)
	}
	if o.Canary.Latency.Count() != 300 || o.Elapsed != 5*time.Minute {
		t.Errorf("latency count %d, elapsed %v", o.Canary.Latency.Count(), o.Elapsed)
	}
	// ClickHouse's buckets are Go's.
	var want Histogram
	for k := range 19 {
		want.AddN(BucketOf(10+float64(k)), 300)
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		if got, w := o.Baseline.Latency.Quantile(q), want.Quantile(q); got != w {
			t.Errorf("baseline q%g %v, want %v", q, got, w)
		}
	}
	j, err := New(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	v := j.Judge(o)
	if v.Outcome != Fail {
		for _, e := range v.Evidence {
			t.Log(e)
		}
		t.Fatalf("verdict %s, want fail", v.Outcome)
	}
	if f := v.Failed(); len(f) == 0 || f[0] != RuleErrorRate && f[0] != RuleLatencyP99 {
		t.Errorf("failed rules %v", f)
	}
}

// lambdaBin is the obvious numeric bin, the one numericBin replaced: count
// key i's edges below the value with a lambda.
func lambdaBin(edges [][]float64) string {
	arrays := make([]string, len(edges))
	for i, e := range edges {
		arrays[i] = chsql.Floats(e)
	}
	return fmt.Sprintf("arrayCount(e -> fvalue > e, arrayElement(CAST([%s] AS Array(Array(Float64))), i))", strings.Join(arrays, ", "))
}

// TestNumericBinOnClickHouse: the numeric bin ClickHouse computes is the
// number of the key's edges strictly below the value, as the lambda
// form gives it, for keys with different numbers of edges (none
// included), values on an edge, beyond them all and infinite.
func TestNumericBinOnClickHouse(t *testing.T) {
	db := chtest.NewDB(t)
	edges := [][]float64{{1, 2, 3}, {0.5}, {}}
	values := []float64{math.Inf(-1), 0, 0.5, 1, 1.5, 2, 3, 3.5, math.Inf(1), 1e300}
	q := fmt.Sprintf("SELECT countIf(b1 != b2), count(), sum(b1) FROM (SELECT toUInt32(%s) AS b1, toUInt32(%s) AS b2 FROM (SELECT arrayJoin(%s) AS fvalue) ARRAY JOIN [1, 2, 3] AS i)",
		featureSeries.numericBin(edges), lambdaBin(edges), chsql.Floats(values))
	var differ, n, sum uint64
	if err := db.QueryScalar(context.Background(), q, &differ, &n, &sum); err != nil {
		t.Fatal(err)
	}
	// Bins by hand: key 1 (edges 1, 2, 3): 0 0 0 0 1 1 2 3 3 3 = 13;
	// key 2 (0.5): 0 0 0 1 1 1 1 1 1 1 = 7; key 3: all 0.
	if differ != 0 || n != 30 || sum != 20 {
		t.Errorf("%d of %d bins differ from the lambda form, bins sum to %d (want 0, 30, 20)", differ, n, sum)
	}
	if got := featureSeries.numericBin([][]float64{{}, {}}); got != "0" {
		t.Errorf("bin with no edges at all: %q, want 0", got)
	}
}
