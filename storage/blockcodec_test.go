package storage

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

func codecBlocks() []Block {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)
	var s GPUSampleBlock
	s.Append(&GPUSample{Time: t0, Metric: "DCGM_FI_DEV_GPU_TEMP", Series: math.MaxUint64, Value: 61.5})
	s.Append(&GPUSample{Time: t0.Add(time.Millisecond), Metric: "DCGM_FI_DEV_XID_ERRORS", Series: 7, Value: -1, Delta: math.Inf(1)})
	var g GPUSeriesBlock
	g.Append(&GPUSeries{Series: 7, Metric: "m", Counter: true, Topology: fleet.Topology{Node: "node-1"}, GPU: fleet.GPUIdentity{UUID: "GPU-1"},
		Labels: fleet.Labels{Keys: []string{"a", "b"}, Values: []string{"x", "ünïcode"}}, FirstSeen: t0, LastSeen: t0})
	g.Append(&GPUSeries{Series: 8, Metric: "m2"})
	var ie InferenceEventBlock
	ie.Append(&fleet.InferenceEvent{Time: t0, Model: "fraud", RequestID: "r1", FeatureNames: []string{"amount"}, FeatureValues: []float64{math.NaN()},
		CatFeatureNames: []string{"country"}, CatFeatureValues: []string{"FR"}})
	ie.Append(&fleet.InferenceEvent{Time: t0, Model: "fraud", RequestID: "r2"})
	bins := Block{Table: "drift_bins", Columns: []string{"ts", "bin", "count"}, Data: []any{[]int64{1, 2}, []int16{-1, 300}, []uint64{5, 6}}}
	return []Block{s.Block(), g.Block(), ie.Block(), bins}
}

func TestBlockEncodingRoundTrips(t *testing.T) {
	var buf []byte
	var err error
	blocks := codecBlocks()
	for _, b := range blocks {
		if buf, err = AppendBlock(buf, b); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range blocks {
		var got Block
		got, buf, err = ReadBlock(buf)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if got.Table != want.Table || !reflect.DeepEqual(got.Columns, want.Columns) {
			t.Fatalf("block %d: got %s%v, want %s%v", i, got.Table, got.Columns, want.Table, want.Columns)
		}
		for c := range want.Data {
			if !sameColumn(got.Data[c], want.Data[c]) {
				t.Errorf("block %s column %s: got %#v, want %#v", want.Table, want.Columns[c], got.Data[c], want.Data[c])
			}
		}
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left over", len(buf))
	}
}

// sameColumn is reflect.DeepEqual that takes NaN as equal to NaN.
func sameColumn(a, b any) bool {
	if fa, ok := a.([][]float64); ok {
		fb := b.([][]float64)
		if len(fa) != len(fb) {
			return false
		}
		for i := range fa {
			if len(fa[i]) != len(fb[i]) {
				return false
			}
			for j := range fa[i] {
				if math.Float64bits(fa[i][j]) != math.Float64bits(fb[i][j]) {
					return false
				}
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestBlockEncodingRejectsCorruptInput(t *testing.T) {
	buf, err := AppendBlock(nil, codecBlocks()[1])
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(buf); cut++ {
		if _, _, err := ReadBlock(buf[:cut]); !errors.Is(err, ErrCorruptBlock) {
			t.Fatalf("a block cut at %d of %d bytes: err = %v, want ErrCorruptBlock", cut, len(buf), err)
		}
	}
	if _, err := AppendBlock(nil, Block{Table: "t", Columns: []string{"c"}, Data: []any{[]bool{true}}}); err == nil {
		t.Fatal("an unsupported column type must be an error")
	}
}

func TestAppendRowsConcatenatesAndChecksShape(t *testing.T) {
	blocks := codecBlocks()
	var acc Block
	var err error
	for i := 0; i < 3; i++ {
		if acc, err = AppendRows(acc, blocks[0]); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := acc.Rows(); n != 6 {
		t.Fatalf("rows = %d, want 6", n)
	}
	if n, _ := blocks[0].Rows(); n != 2 {
		t.Fatalf("the source block changed: %d rows", n)
	}
	if _, err := AppendRows(acc, blocks[1]); err == nil {
		t.Fatal("appending another table's rows must fail")
	}
}

// A block queued with its columns in another order (before the builders
// followed the table's order) still joins a batch: matched by name.
func TestAppendRowsAlignsColumnsByName(t *testing.T) {
	a := Block{Table: "t", Columns: []string{"x", "y"}, Data: []any{[]int64{1}, []string{"a"}}}
	b := Block{Table: "t", Columns: []string{"y", "x"}, Data: []any{[]string{"b"}, []int64{2}}}
	acc, err := AppendRows(Block{}, a)
	if err != nil {
		t.Fatal(err)
	}
	if acc, err = AppendRows(acc, b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(acc.Data, []any{[]int64{1, 2}, []string{"a", "b"}}) {
		t.Fatalf("data = %v", acc.Data)
	}
	c := Block{Table: "t", Columns: []string{"y", "z"}, Data: []any{[]string{"c"}, []int64{3}}}
	if _, err := AppendRows(acc, c); err == nil {
		t.Fatal("appending rows with other columns must fail")
	}
}

func FuzzReadBlock(f *testing.F) {
	for _, b := range codecBlocks() {
		buf, err := AppendBlock(nil, b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, rest, err := ReadBlock(data)
		if err != nil {
			return
		}
		if len(rest) > len(data) {
			t.Fatal("rest longer than the input")
		}
		// A decoded block encodes, and that encoding decodes to the same block.
		again, err := AppendBlock(nil, b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, rest2, err := ReadBlock(again)
		if err != nil || len(rest2) != 0 {
			t.Fatalf("decode the re-encoding: %v, %d bytes left", err, len(rest2))
		}
		third, _ := AppendBlock(nil, b2)
		if string(third) != string(again) {
			t.Fatal("the encoding of a decoded block is not stable")
		}
	})
}

// Rows appended into reserved room land in the reserved columns: the
// values are right and the columns were not reallocated.
func TestReserveRowsThenAppendDoesNotReallocate(t *testing.T) {
	a := Block{Table: "t", Columns: []string{"x", "y"}, Data: []any{[]int64{1}, []string{"a"}}}
	b := Block{Table: "t", Columns: []string{"y", "x"}, Data: []any{[]string{"b", "c"}, []int64{2, 3}}}
	cases := []struct {
		name  string
		start Block
		want  []any
	}{
		{"empty batch", Block{}, []any{[]int64{1, 2, 3}, []string{"a", "b", "c"}}},
		{"batch with rows", Block{Table: "t", Columns: []string{"x", "y"}, Data: []any{[]int64{0}, []string{"z"}}},
			[]any{[]int64{0, 1, 2, 3}, []string{"z", "a", "b", "c"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acc := ReserveRows(tc.start, a, 3)
			first := reflect.ValueOf(acc.Data[0]).Pointer()
			var err error
			for _, src := range []Block{a, b} {
				if acc, err = AppendRows(acc, src); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(acc.Data, tc.want) {
				t.Fatalf("data = %v, want %v", acc.Data, tc.want)
			}
			if reflect.ValueOf(acc.Data[0]).Pointer() != first {
				t.Error("the reserved column was reallocated")
			}
		})
	}
}
