package upstream

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// The graph: feature pipeline fs feeds embed; embed feeds retrieval
// (embed's downstream edge) and retrieval feeds ranker (ranker's upstream
// edge); fraud stands alone.
const graph = `
components:
  - {name: fs, type: feature_pipeline, ownership: {team: features}}
models:
  - model: {name: embed}
    dependencies: {upstream: [fs], downstream: [models/retrieval]}
    ownership: {team: embeddings, oncall: emb-oncall}
  - model: {name: retrieval}
    ownership: {team: retrieval-team, oncall: ret-oncall}
  - model: {name: ranker}
    dependencies: {upstream: [models/retrieval]}
    ownership: {team: ranking, oncall: rank-oncall}
  - model: {name: fraud}
    ownership: {team: risk}
`

// TestDetectorOnClickHouse: embed's deploy alerts retrieval (direct,
// warning) and ranker (through retrieval, info) in every window for the
// 30-minute notice; fraud's deploy has no consumers; changes older than
// the notice, and a component's, raise nothing.
func TestDetectorOnClickHouse(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	cat, err := catalog.Parse([]byte(graph))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	var b storage.ModelDeploymentBlock
	for _, r := range []storage.ModelDeployment{
		{Time: t0.Add(10 * time.Second), Model: "embed", ModelVersion: "3.3.0", PreviousVersion: "3.2.1", Change: "deploy", Environment: "prod", Actor: "ci"},
		{Time: t0.Add(20 * time.Second), Model: "fraud", ModelVersion: "8", PreviousVersion: "7", Change: "deploy"},
		{Time: t0.Add(25 * time.Second), Model: "fs", ModelVersion: "v9", Change: "deploy"},
		{Time: t0.Add(-31 * time.Minute), Model: "embed", ModelVersion: "3.2.1", Change: "deploy"},
		{Time: t0.Add(30 * time.Second), Model: "retrieval", ModelVersion: "5", PreviousVersion: "4", Change: "canary"},
	} {
		b.Append(&r)
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(NewDefaultConfig(), db, cat)
	if err != nil {
		t.Fatal(err)
	}
	dets, err := d.Evaluate(ctx, fleet.Window{Start: t0, End: t0.Add(30 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ entity, severity, key string }{
		{"ranker", SeverityIndirect, "upstream/embed/3.3.0@1796526010/ranker"},
		{"retrieval", SeverityDirect, "upstream/embed/3.3.0@1796526010/retrieval"},
	}
	if len(dets) != len(want) {
		t.Fatalf("%d detections, want %d: %+v", len(dets), len(want), dets)
	}
	for i, w := range want {
		got := dets[i]
		if got.Entity != w.entity || got.Model != w.entity || got.EntityType != "model" || got.Severity != w.severity || got.Key != w.key || got.Class != Class {
			t.Errorf("detection %d: %+v, want %+v", i, got, w)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(got.Evidence), &ev); err != nil || ev["upstream"] != "embed" || ev["previous_version"] != "3.2.1" || ev["upstream_team"] != "embeddings" {
			t.Errorf("evidence %s: %v", got.Evidence, err)
		}
	}
	// The next window: embed's deploy again (same keys), and retrieval's
	// canary alerts ranker, directly.
	dets, err = d.Evaluate(ctx, fleet.Window{Start: t0.Add(30 * time.Second), End: t0.Add(time.Minute)})
	var keys []string
	for _, dt := range dets {
		keys = append(keys, dt.Key+" "+dt.Severity)
	}
	wantKeys := []string{"upstream/embed/3.3.0@1796526010/ranker info", "upstream/embed/3.3.0@1796526010/retrieval warning", "upstream/retrieval/5@1796526030/ranker warning"}
	if err != nil || !slices.Equal(keys, wantKeys) {
		t.Errorf("second window: %v, %v; want %v", keys, err, wantKeys)
	}
	// 30 minutes after both: nothing.
	if dets, err := d.Evaluate(ctx, fleet.Window{Start: t0.Add(40 * time.Minute), End: t0.Add(40*time.Minute + 30*time.Second)}); err != nil || len(dets) != 0 {
		t.Errorf("after the notice: %+v, %v", dets, err)
	}
}

func TestNewDetectorNeedsCatalog(t *testing.T) {
	if _, err := NewDetector(NewDefaultConfig(), nil, nil); err == nil {
		t.Error("no catalog accepted")
	}
	for _, f := range []func(*Config){func(c *Config) { c.Interval = 0 }, func(c *Config) { c.Notice = time.Second }, func(c *Config) { c.Name = "" }} {
		c := NewDefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
