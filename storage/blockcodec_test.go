package storage

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
	"unsafe"

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
	if fa, ok := a.([]float64); ok {
		return sameColumn([][]float64{fa}, [][]float64{b.([]float64)})
	}
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
		// AppendEncoded accepts exactly what ReadBlock does, with the same
		// rows and rest, into an empty block and after them.
		got, n, grest, gerr := AppendEncoded(Block{}, data, &Strings{})
		if (err == nil) != (gerr == nil) {
			t.Fatalf("ReadBlock: %v, AppendEncoded: %v", err, gerr)
		}
		if err != nil {
			return
		}
		if n != rowsOfBlock(b) || len(grest) != len(rest) || !reflect.DeepEqual(got.Columns, b.Columns) {
			t.Fatalf("AppendEncoded: %d rows, %d bytes left, %v; ReadBlock: %d, %d, %v", n, len(grest), got.Columns, rowsOfBlock(b), len(rest), b.Columns)
		}
		twice, _, _, err := AppendEncoded(got, data, nil)
		if err != nil || rowsOfBlock(twice) != 2*n {
			t.Fatalf("appending the same block again: %d rows, %v", rowsOfBlock(twice), err)
		}
		for c := range b.Data {
			if !sameColumn(reflect.ValueOf(twice.Data[c]).Slice(0, n).Interface(), b.Data[c]) {
				t.Fatalf("column %s: AppendEncoded %#v, ReadBlock %#v", b.Columns[c], twice.Data[c], b.Data[c])
			}
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

// AppendEncoded gives, record after record, the rows that ReadBlock and
// AppendRows give; a block whose columns come in another order is matched by
// name; a block of another shape is refused whole with the rest after it;
// a corrupt block (every cut) is refused without touching the rows before.
func TestAppendEncodedMatchesReadThenAppend(t *testing.T) {
	blocks := codecBlocks()
	var enc []byte
	for _, b := range blocks {
		var err error
		if enc, err = AppendBlock(enc, b); err != nil {
			t.Fatal(err)
		}
	}
	var strs Strings
	got := map[string]Block{}
	want := map[string]Block{}
	for round := 0; round < 3; round++ {
		rest := enc
		for len(rest) > 0 {
			b, r, err := ReadBlock(rest)
			if err != nil {
				t.Fatal(err)
			}
			if want[b.Table], err = AppendRows(want[b.Table], b); err != nil {
				t.Fatal(err)
			}
			var n int
			got[b.Table], n, rest, err = AppendEncoded(got[b.Table], rest, &strs)
			if err != nil || n != rowsOfBlock(b) {
				t.Fatalf("round %d %s: %d rows, %v", round, b.Table, n, err)
			}
			if len(rest) != len(r) {
				t.Fatalf("round %d %s: %d bytes left, ReadBlock leaves %d", round, b.Table, len(rest), len(r))
			}
		}
	}
	for table, w := range want {
		g := got[table]
		if !reflect.DeepEqual(g.Columns, w.Columns) {
			t.Fatalf("%s: columns %v, want %v", table, g.Columns, w.Columns)
		}
		for c := range w.Data {
			if !sameColumn(g.Data[c], w.Data[c]) {
				t.Errorf("%s column %s: got %#v, want %#v", table, w.Columns[c], g.Data[c], w.Data[c])
			}
		}
	}
	// Reordered columns land in dst's order.
	bins := blocks[3]
	swapped := Block{Table: bins.Table, Columns: []string{"count", "ts", "bin"}, Data: []any{[]uint64{9}, []int64{3}, []int16{4}}}
	sw, _ := AppendBlock(nil, swapped)
	acc, n, _, err := AppendEncoded(got["drift_bins"], sw, nil)
	if err != nil || n != 1 || !reflect.DeepEqual(acc.Data[0], []int64{1, 2, 1, 2, 1, 2, 3}) || !reflect.DeepEqual(acc.Data[2], []uint64{5, 6, 5, 6, 5, 6, 9}) {
		t.Fatalf("reordered: %d rows, %v, %v", n, acc.Data, err)
	}
	acc = TruncateRows(acc, 6)
	// Another shape: refused whole, rest after the block, dst unchanged.
	for _, other := range []Block{
		{Table: "drift_bins", Columns: []string{"ts", "bin"}, Data: []any{[]int64{1}, []int16{1}}},
		{Table: "drift_bins", Columns: []string{"ts", "bin", "other"}, Data: []any{[]int64{1}, []int16{1}, []uint64{1}}},
		{Table: "drift_bins", Columns: []string{"ts", "bin", "count"}, Data: []any{[]int64{1}, []int16{1}, []float64{1}}},
		{Table: "drift_bins", Columns: []string{"ts", "ts", "count"}, Data: []any{[]int64{1}, []int64{1}, []uint64{1}}},
		{Table: "spans", Columns: []string{"ts", "bin", "count"}, Data: []any{[]int64{1}, []int16{1}, []uint64{1}}},
	} {
		o, _ := AppendBlock(nil, other)
		o = append(o, 0xAB)
		after, n, rest, err := AppendEncoded(acc, o, nil)
		if !errors.Is(err, ErrBlockShape) || n != 0 || len(rest) != 1 || rowsOfBlock(after) != 6 || !reflect.DeepEqual(after.Data[0], []int64{1, 2, 1, 2, 1, 2}) {
			t.Errorf("%s%v: %d rows, rest %d bytes, now %d rows, %v", other.Table, other.Columns, n, len(rest), rowsOfBlock(after), err)
		}
	}
	// Every cut of a block is corrupt; the rows before stay as they were.
	one, _ := AppendBlock(nil, blocks[2])
	base := got[blocks[2].Table]
	baseRows := rowsOfBlock(base)
	for cut := 0; cut < len(one); cut++ {
		after, n, _, err := AppendEncoded(base, one[:cut], &strs)
		if !errors.Is(err, ErrCorruptBlock) || n != 0 || rowsOfBlock(after) != baseRows {
			t.Fatalf("cut at %d of %d: %d rows appended, now %d rows (was %d), %v", cut, len(one), n, rowsOfBlock(after), baseRows, err)
		}
		if _, _, _, err := AppendEncoded(Block{}, one[:cut], nil); !errors.Is(err, ErrCorruptBlock) {
			t.Fatalf("cut at %d into an empty block: %v", cut, err)
		}
	}
}

func rowsOfBlock(b Block) int {
	n, _ := b.Rows()
	return n
}

// Decoded strings that repeat share their memory.
func TestStringsIntern(t *testing.T) {
	var s Strings
	a, b := s.get([]byte("DCGM_FI_DEV_GPU_TEMP")), s.get([]byte("DCGM_FI_DEV_GPU_TEMP"))
	if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("the same string was allocated twice")
	}
	if n := testing.AllocsPerRun(100, func() { s.get([]byte("DCGM_FI_DEV_GPU_TEMP")) }); n != 0 {
		t.Fatalf("%v allocations to look up a known string", n)
	}
}
