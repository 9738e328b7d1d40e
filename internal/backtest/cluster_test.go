package backtest_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/backtest"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// The same scenario, stored through the agent's encoder and the
// collector's exporter once into a single server and once into a real
// 2-shard × 2-replica cluster (Distributed over Replicated tables), gives
// the analyzer the same detections and the same pages: its queries mean
// the same thing on both. Incidents and results are written to the
// cluster too.
func TestClusterGivesTheSameDetectionsAsOneServer(t *testing.T) {
	sc, err := sim.Load("../testsupport/score/testdata/mixed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Start = time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	from, to := sc.Start, sc.Start.Add(sc.Duration)
	cl := chtest.StartCluster(t)
	single, cluster := chtest.NewDB(t), chtest.OpenClusterDB(t, cl)
	ctx := context.Background()
	cfg := analyzer.NewDefaultConfig()
	run := func(src, target *storage.Client) *backtest.Result {
		t.Helper()
		if _, err := score.Store(ctx, sc, src, score.StoreOptions{QueueDir: t.TempDir(), MaxAge: 30 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		res, err := backtest.Run(ctx, backtest.Config{Analyzer: cfg, From: from, To: to}, src, target, chtest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	one := run(single, chtest.NewDB(t))
	many := run(cluster, chtest.OpenClusterDB(t, cl))
	a, b := detectionSet(one.Detections), detectionSet(many.Detections)
	if len(a) == 0 {
		t.Fatal("no detections on the single server: nothing compared")
	}
	if d := setDiff(a, b); d != "" {
		t.Errorf("detections differ (single server vs cluster):\n%s", d)
	}
	if d := setDiff(pageSet(one), pageSet(many)); d != "" {
		t.Errorf("pages differ (single server vs cluster):\n%s", d)
	}
	var n uint64
	if err := cluster.QueryScalar(ctx, "SELECT count() FROM "+cluster.Config().Database+".gpu_samples", &n); err != nil || n == 0 {
		t.Errorf("cluster holds %d samples (%v)", n, err)
	}
	t.Logf("%d detections and %d pages on both; the cluster holds %d samples", len(a), len(one.Pages), n)
}

// detectionSet renders each detection without the fields a query's
// floating-point summation order may change in the last digits.
func detectionSet(ds []fleet.Detection) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		out[fmt.Sprintf("%s %s %s %s %s/%s %s %.6g", d.Time.UTC().Format(time.RFC3339), d.Detector, d.Class, d.Severity,
			d.EntityType, d.Entity, d.Feature, round(d.Value))]++
	}
	return out
}

func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	return math.Round(v*1e4) / 1e4
}

func pageSet(r *backtest.Result) map[string]int {
	out := map[string]int{}
	for _, p := range r.Pages {
		out[fmt.Sprintf("%s %s %s", p.Time.UTC().Format(time.RFC3339), p.Incident.Key, p.Incident.Severity)]++
	}
	return out
}

func setDiff(a, b map[string]int) string {
	var out []string
	for k, n := range a {
		if b[k] != n {
			out = append(out, fmt.Sprintf("  %s: %d vs %d", k, n, b[k]))
		}
	}
	for k, n := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("  %s: 0 vs %d", k, n))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
