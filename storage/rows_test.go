package storage_test

import (
	"sort"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Every builder writes exactly the columns its table defines.
func TestBuildersCoverTheirTables(t *testing.T) {
	blocks := []storage.Block{
		(&storage.GPUSampleBlock{}).Block(),
		(&storage.GPUSeriesBlock{}).Block(),
		(&storage.GPUEventBlock{}).Block(),
		(&storage.InferenceEventBlock{}).Block(),
		(&storage.DelayedLabelBlock{}).Block(),
		(&storage.ModelDeploymentBlock{}).Block(),
		(&storage.SpanBlock{}).Block(),
		(&storage.DetectionBlock{}).Block(),
	}
	tables := map[string]schema.Table{}
	for _, tb := range schema.Tables() {
		tables[tb.Name] = tb
	}
	for _, b := range blocks {
		tb, ok := tables[b.Table]
		if !ok {
			t.Errorf("builder writes unknown table %s", b.Table)
			continue
		}
		got := append([]string{}, b.Columns...)
		want := tb.ColumnNames()
		sort.Strings(got)
		sort.Strings(want)
		if len(got) != len(want) {
			t.Errorf("%s: builder has %v, table has %v", b.Table, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: builder has %v, table has %v", b.Table, got, want)
				break
			}
		}
		if n, err := b.Rows(); err != nil || n != 0 {
			t.Errorf("%s: empty builder gives %d rows, %v", b.Table, n, err)
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
