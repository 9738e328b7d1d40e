package canary

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// TestDetectorOnClickHouse: a canary recorded in model_deployments, its
// requests in inference_events; the detector finds it, judges it every
// 10 s and raises one detection, with the deployment and the evidence,
// once its error rate is shown to be worse; a restarted detector reads the
// restarts' counts back and reaches the same verdict; a promotion ends it.
// Rules without data (no outcomes, no labels) are counted as skipped at
// every look, and a second canary whose catalog entry the judge rejects
// is counted as a failed look without stopping the first being judged.
func TestDetectorOnClickHouse(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	dep, ev := traffic.BadCanary(t0, 10*time.Minute)
	dep.Append(&storage.ModelDeployment{Time: t0.Add(-24 * time.Hour), Model: "ranker", ModelVersion: "v7", PreviousVersion: "v6", Change: "deploy"})
	dep.Append(&storage.ModelDeployment{Time: t0.Add(-time.Hour), Model: "fraud", ModelVersion: "v2", PreviousVersion: "v1", Change: "canary"})
	dep.Append(&storage.ModelDeployment{Time: t0.Add(-30 * time.Minute), Model: "fraud", ModelVersion: "v2", PreviousVersion: "v1", Change: "promote"})
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "scorer", ModelVersion: "v3", PreviousVersion: "v2", Change: "canary"})
	// Canaries naming no previous version (embed's catalog entry has a
	// last known good one), and one whose baseline serves nothing.
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "embed", ModelVersion: "v5", Change: "canary"})
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "search", ModelVersion: "v5", Change: "canary"})
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "lonely", ModelVersion: "v2", PreviousVersion: "v1", Change: "canary"})
	for s := range 300 {
		ev.Append(&fleet.InferenceEvent{Time: t0.Add(time.Duration(s) * time.Second), Model: "lonely", ModelVersion: "v2", RequestID: fmt.Sprint("lonely-", s), LatencyMs: 5, Status: "ok"})
	}
	chtest.Write(t, db, dep.Block(), ev.Block())
	cat, err := catalog.Parse([]byte(`
models:
  - model: {name: ranker, type: ranking, domain: recommendation}
  - model: {name: scorer, type: classification}
    canary: {alpha: 0.7}
  - model: {name: embed}
    evaluation: {last_known_good: v4}
`))
	if err != nil {
		t.Fatal(err)
	}
	newDetector := func() (*Detector, *[]Verdict) {
		d, err := NewDetector(NewDefaultDetectorConfig(), db, cat, nil)
		if err != nil {
			t.Fatal(err)
		}
		var seen []Verdict
		d.OnVerdict = func(_ context.Context, dep Deployment, v Verdict) {
			if dep.Model != "ranker" {
				return
			}
			if dep.Key() != "ranker/v8@1796522400" || dep.BaselineVersion != "v7" {
				t.Errorf("verdict for %+v", dep)
			}
			seen = append(seen, v)
		}
		return d, &seen
	}
	d, seen := newDetector()
	var dets []fleet.Detection
	var failedAt time.Duration
	for end := t0.Add(10 * time.Second); end.Before(t0.Add(5 * time.Minute)); end = end.Add(10 * time.Second) {
		out, err := d.Evaluate(ctx, fleet.Window{Start: end.Add(-10 * time.Second), End: end})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > 0 && failedAt == 0 {
			failedAt = end.Sub(t0)
		}
		dets = append(dets, out...)
	}
	if len(dets) != 1 {
		t.Fatalf("%d detections, want 1", len(dets))
	}
	got := dets[0]
	t.Logf("failed after %v: %s", failedAt, got.Summary)
	if got.Key != "canary/ranker/v8@1796522400" || got.ModelVersion != "v8" || got.Class != "canary_regression" ||
		!strings.Contains(got.Action, "back from v8 to v7") || !strings.Contains(got.Evidence, "error_rate fail") {
		t.Errorf("detection %+v", got)
	}
	// 500 canary samples take 100 s; failing needs no more than 3 minutes.
	if failedAt < 100*time.Second || failedAt > 3*time.Minute {
		t.Errorf("failed after %v, want between 100 s and 3 min", failedAt)
	}
	if len(*seen) != 29 || (*seen)[len(*seen)-1].Outcome != Fail {
		t.Errorf("%d verdicts, last %v", len(*seen), (*seen)[len(*seen)-1].Outcome)
	}
	// ranker: no outcomes, no labels, at every look. lonely (a baseline
	// without requests): no labels; no outcomes until its requests are
	// trials, the 12 looks of the first 2 minutes (then the canary has
	// trials). embed (no requests at all): no rule can run. scorer's look
	// fails (alpha 0.7) and search has no baseline version.
	want := map[fleet.SkipKey]uint64{
		{Rule: RuleEngagement, Reason: "no_outcomes"}:   29 + 12 + 29,
		{Rule: RuleAccuracy, Reason: "no_labels"}:       3 * 29,
		{Rule: RuleErrorRate, Reason: "no_requests"}:    29,
		{Rule: RuleLatencyP99, Reason: "no_latencies"}:  29,
		{Rule: SkipLook, Reason: "look_failed"}:         29,
		{Rule: SkipLook, Reason: "no_baseline_version"}: 29,
		{Rule: SkipLook, Reason: "no_baseline_traffic"}: 29,
	}
	if got := d.Skipped(); !maps.Equal(got, want) {
		t.Errorf("skipped %v\nwant    %v", got, want)
	}

	// A restarted analyzer: the Tracker's restarts are read back.
	d2, seen2 := newDetector()
	end := t0.Add(6 * time.Minute)
	out, err := d2.Evaluate(ctx, fleet.Window{Start: end.Add(-10 * time.Second), End: end})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || (*seen2)[0].Outcome != Fail || len(d2.running["ranker/v8@1796522400"].tr.snaps) < 3 {
		t.Errorf("after a restart: %d detections, verdict %v", len(out), (*seen2)[0].Outcome)
	}

	// Promoted: no canary left.
	var promote storage.ModelDeploymentBlock
	promote.Append(&storage.ModelDeployment{Time: t0.Add(7 * time.Minute), Model: "ranker", ModelVersion: "v8", PreviousVersion: "v7", Change: "promote"})
	chtest.Write(t, db, promote.Block())
	deps, err := d2.Canaries(ctx, t0.Add(8*time.Minute))
	if err != nil || len(deps) != 4 || slices.ContainsFunc(deps, func(d Deployment) bool { return d.Model == "ranker" }) {
		t.Errorf("after the promotion: %v, %v; want the other four canaries left", deps, err)
	}
	for _, dep := range deps {
		if want := map[string]string{"embed": "v4", "search": "", "lonely": "v1", "scorer": "v2"}[dep.Model]; dep.BaselineVersion != want {
			t.Errorf("%s's baseline %q, want %q", dep.Key(), dep.BaselineVersion, want)
		}
	}
}
