package storage_test

import (
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Every builder writes exactly the columns its table defines, in the
// table's order, and every table Go code writes has a builder.
func TestBuildersFollowTheirTables(t *testing.T) {
	blocks := []storage.Block{
		(&storage.GPUSampleBlock{}).Block(),
		(&storage.GPUSeriesBlock{}).Block(),
		(&storage.GPUEventBlock{}).Block(),
		(&storage.InferenceEventBlock{}).Block(),
		(&storage.DelayedLabelBlock{}).Block(),
		(&storage.BusinessOutcomeBlock{}).Block(),
		(&storage.CanaryVerdictBlock{}).Block(),
		(&storage.ModelDeploymentBlock{}).Block(),
		(&storage.SpanBlock{}).Block(),
		(&storage.DetectionBlock{}).Block(),
		(&storage.DriftProfileBlock{}).Block(),
		(&storage.DriftScoreBlock{}).Block(),
		(&storage.DriftBinBlock{}).Block(),
		(&storage.SPCStateBlock{}).Block(),
		(&storage.AnalyzerWindowBlock{}).Block(),
		(&storage.IncidentBlock{}).Block(),
		(&storage.IncidentEvidenceBlock{}).Block(),
		(&storage.NotificationBlock{}).Block(),
		(&storage.NotificationOutboxBlock{}).Block(),
		(&storage.JobHealthBlock{}).Block(),
		(&storage.CostDailyBlock{}).Block(),
	}
	tables := map[string]schema.Table{}
	for _, tb := range schema.Tables() {
		tables[tb.Name] = tb
	}
	built := map[string]bool{}
	for _, b := range blocks {
		tb, ok := tables[b.Table]
		if !ok {
			t.Errorf("builder writes unknown table %s", b.Table)
			continue
		}
		built[b.Table] = true
		if want := tb.ColumnNames(); !slices.Equal(b.Columns, want) {
			t.Errorf("%s: builder has %v, table has %v", b.Table, b.Columns, want)
		}
		if n, err := b.Rows(); err != nil || n != 0 {
			t.Errorf("%s: empty builder gives %d rows, %v", b.Table, n, err)
		}
	}
	// Tables filled by the server (materialized views, and the cost
	// rollup's INSERT … SELECT: analytics/cost.Store.RollUp) need no
	// builder.
	for _, v := range schema.Views() {
		built[v.To] = true
	}
	for _, tb := range []schema.Table{schema.GPUHeld1h, schema.GPUHeld1hHours} {
		built[tb.Name] = true
	}
	for name := range tables {
		if !built[name] {
			t.Errorf("table %s has no builder", name)
		}
	}
}

func TestBlockRowsRejectsRaggedColumns(t *testing.T) {
	cases := []struct {
		name string
		b    storage.Block
	}{
		{"no table", storage.Block{Columns: []string{"a"}, Data: []any{[]int64{1}}}},
		{"names vs data", storage.Block{Table: "t", Columns: []string{"a", "b"}, Data: []any{[]int64{1}}}},
		{"ragged", storage.Block{Table: "t", Columns: []string{"a", "b"}, Data: []any{[]int64{1, 2}, []string{"x"}}}},
		{"not a slice", storage.Block{Table: "t", Columns: []string{"a"}, Data: []any{42}}},
		{"no columns", storage.Block{Table: "t"}},
	}
	for _, c := range cases {
		if _, err := c.b.Rows(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestHashSeriesSeparatesParts(t *testing.T) {
	if storage.HashSeries("ab", "c") == storage.HashSeries("a", "bc") {
		t.Fatal("part boundaries are not part of the hash")
	}
	if storage.HashSeries("m", "gpu", "0") != storage.HashSeries("m", "gpu", "0") {
		t.Fatal("hash is not deterministic")
	}
}
