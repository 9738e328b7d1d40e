package analyzer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// TestUpstreamUpdateOpensTheConsumersIncident: with analyzer.upstream and
// alerting (open_severity warning), embed's deploy opens an incident about
// its direct consumer retrieval, owned by retrieval's team; ranker, two
// hops down, gets an info detection, below alerting's min_severity.
func TestUpstreamUpdateOpensTheConsumersIncident(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	catPath := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(`
models:
  - model: {name: embed}
    dependencies: {downstream: [models/retrieval]}
    ownership: {team: embeddings, oncall: emb-oncall}
  - model: {name: retrieval}
    ownership: {team: retrieval-team, oncall: ret-oncall}
  - model: {name: ranker}
    dependencies: {upstream: [models/retrieval]}
    ownership: {team: ranking, oncall: rank-oncall}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var b storage.ModelDeploymentBlock
	b.Append(&storage.ModelDeployment{Time: t0.Add(5 * time.Second), Model: "embed", ModelVersion: "2", PreviousVersion: "1", Change: "deploy"})
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = ""
	cfg.Drift.Enabled, cfg.SPCModels.Enabled, cfg.SPCLabels.Enabled, cfg.SPCGPU.Enabled = false, false, false, false
	cfg.Health.Enabled, cfg.Jobs.Enabled, cfg.Freshness.Enabled = false, false, false
	cfg.Alerting.Enabled, cfg.Alerting.Catalog, cfg.Alerting.SLO.Enabled = true, catPath, false
	cfg.Alerting.Lifecycle.OpenSeverity = "warning"
	cfg.Upstream.Enabled = true
	cfg.Engine.StartAt = t0
	a, err := New(ctx, cfg, c, chtest.Logger(t), WithClock(engine.NewManualClock(t0.Add(2*time.Minute+cfg.Engine.Lateness))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Step(ctx); err != nil {
		t.Fatal(err)
	}
	type row struct{ key, status, team, oncall string }
	var got []row
	var res chsql.Result
	k, st, tm, oc := res.Str("k"), res.Str("s"), res.Str("tm"), res.Str("oc")
	sql := "SELECT key AS k, toString(argMax(status, version)) AS s, toString(argMax(team, version)) AS tm, toString(argMax(oncall, version)) AS oc FROM " +
		c.Config().Database + ".incidents GROUP BY key ORDER BY key"
	if err := res.ForRows(ctx, c, sql, func(r int) { got = append(got, row{k.At(r), st.At(r), tm.At(r), oc.At(r)}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (row{"upstream_update/model/retrieval", "open", "retrieval-team", "ret-oncall"}) {
		t.Errorf("incidents %+v, want retrieval's, open, for ret-oncall", got)
	}
	var n uint64
	if err := c.QueryScalar(ctx, "SELECT uniqExact(key) FROM "+c.Config().Database+".detections WHERE detector = 'upstream_updates'", &n); err != nil || n != 2 {
		t.Errorf("%d upstream detection keys (%v), want 2 (retrieval, ranker)", n, err)
	}
}
