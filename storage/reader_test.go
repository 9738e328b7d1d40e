package storage_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// Every column type the reader supports survives Writer -> ClickHouse ->
// QueryArrow, across record boundaries, with nulls as validity bits.
func TestArrowRoundTripEveryType(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	if err := c.Exec(ctx, `CREATE TABLE types (
		id UInt32, f64 Float64, f32 Float32, i8 Int8, i16 Int16, i32 Int32, i64 Int64,
		u8 UInt8, u16 UInt16, u64 UInt64, s String, fs FixedString(3), e Enum8('up' = 1, 'down' = 2),
		dt DateTime, d Date, nf Nullable(Float64), ns Nullable(String), ni Nullable(Int64),
		af Array(Float64), ast Array(String), ai Array(Int64), au Array(UInt64)
	) ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 11, 12, 0, time.UTC)
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	f1 := 1.5
	s1 := "present"
	i1 := int64(-7)
	block := storage.Block{
		Table: "types",
		Columns: []string{"id", "f64", "f32", "i8", "i16", "i32", "i64", "u8", "u16", "u64", "s", "fs", "e",
			"dt", "d", "nf", "ns", "ni", "af", "ast", "ai", "au"},
		Data: []any{
			[]uint32{0, 1, 2},
			[]float64{math.Inf(-1), 0.25, math.NaN()},
			[]float32{1.5, -2, 0},
			[]int8{math.MinInt8, 0, math.MaxInt8},
			[]int16{math.MinInt16, 1, math.MaxInt16},
			[]int32{math.MinInt32, 2, math.MaxInt32},
			[]int64{math.MinInt64, 3, math.MaxInt64},
			[]uint8{0, 1, math.MaxUint8},
			[]uint16{0, 1, math.MaxUint16},
			[]uint64{0, 1, math.MaxUint64},
			[]string{"", "a", "ü"},
			[]string{"abc", "de", ""},
			[]string{"up", "down", "up"},
			[]time.Time{t0, t0.Add(time.Hour), time.Unix(0, 0).UTC()},
			[]time.Time{day, day.AddDate(0, 0, 1), day.AddDate(-1, 0, 0)},
			[]*float64{&f1, nil, &f1},
			[]*string{nil, &s1, nil},
			[]*int64{&i1, &i1, nil},
			[][]float64{{}, {1, 2}, {math.NaN()}},
			[][]string{{"x"}, {}, {"y", "z"}},
			[][]int64{{-1}, {}, {}},
			[][]uint64{{}, {math.MaxUint64}, {0, 1}},
		},
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, block); err != nil {
		t.Fatal(err)
	}
	rr, err := c.QueryArrowWith(ctx, storage.ReaderConfig{BatchRows: 2}, "SELECT * FROM types ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()

	wantTypes := map[string]arrow.DataType{
		"f64": arrow.PrimitiveTypes.Float64, "f32": arrow.PrimitiveTypes.Float32, "i8": arrow.PrimitiveTypes.Int8,
		"u64": arrow.PrimitiveTypes.Uint64, "s": arrow.BinaryTypes.String, "fs": arrow.BinaryTypes.String,
		"e": arrow.BinaryTypes.String, "dt": &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"},
		"d": arrow.FixedWidthTypes.Date32, "nf": arrow.PrimitiveTypes.Float64, "af": arrow.ListOf(arrow.PrimitiveTypes.Float64),
		"ast": arrow.ListOf(arrow.BinaryTypes.String),
	}
	sc := rr.Schema()
	for name, want := range wantTypes {
		idx := sc.FieldIndices(name)
		if len(idx) != 1 || !arrow.TypeEqual(sc.Field(idx[0]).Type, want) {
			t.Errorf("column %s: arrow type %v, want %v", name, sc.Field(idx[0]).Type, want)
		}
	}
	if f, _ := sc.FieldsByName("nf"); !f[0].Nullable {
		t.Error("Nullable(Float64) is not a nullable field")
	}

	var recs []arrow.Record
	for rr.Next() {
		rec := rr.Record()
		rec.Retain()
		recs = append(recs, rec)
	}
	if rr.Err() != nil {
		t.Fatal(rr.Err())
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	if len(recs) != 2 || recs[0].NumRows() != 2 || recs[1].NumRows() != 1 {
		t.Fatalf("got %d records; want 2 of 2 and 1 rows", len(recs))
	}
	// row returns the record and index holding row i.
	row := func(i int) (arrow.Record, int) {
		if i < 2 {
			return recs[0], i
		}
		return recs[1], i - 2
	}
	col := func(r arrow.Record, name string) arrow.Array { return r.Column(sc.FieldIndices(name)[0]) }
	for i := 0; i < 3; i++ {
		r, j := row(i)
		check := func(name string, got, want any) {
			t.Helper()
			if g, ok := got.(float64); ok && math.IsNaN(g) {
				if w, ok := want.(float64); ok && math.IsNaN(w) {
					return
				}
			}
			if got != want {
				t.Errorf("row %d column %s: got %v, want %v", i, name, got, want)
			}
		}
		check("f64", col(r, "f64").(*array.Float64).Value(j), block.Data[1].([]float64)[i])
		check("f32", col(r, "f32").(*array.Float32).Value(j), block.Data[2].([]float32)[i])
		check("i8", col(r, "i8").(*array.Int8).Value(j), block.Data[3].([]int8)[i])
		check("i16", col(r, "i16").(*array.Int16).Value(j), block.Data[4].([]int16)[i])
		check("i32", col(r, "i32").(*array.Int32).Value(j), block.Data[5].([]int32)[i])
		check("i64", col(r, "i64").(*array.Int64).Value(j), block.Data[6].([]int64)[i])
		check("u8", col(r, "u8").(*array.Uint8).Value(j), block.Data[7].([]uint8)[i])
		check("u16", col(r, "u16").(*array.Uint16).Value(j), block.Data[8].([]uint16)[i])
		check("u64", col(r, "u64").(*array.Uint64).Value(j), block.Data[9].([]uint64)[i])
		check("s", col(r, "s").(*array.String).Value(j), block.Data[10].([]string)[i])
		wantFS := block.Data[11].([]string)[i]
		for len(wantFS) < 3 {
			wantFS += "\x00" // FixedString pads with zero bytes
		}
		check("fs", col(r, "fs").(*array.String).Value(j), wantFS)
		check("e", col(r, "e").(*array.String).Value(j), block.Data[12].([]string)[i])
		check("dt", int64(col(r, "dt").(*array.Timestamp).Value(j)), block.Data[13].([]time.Time)[i].Unix())
		check("d", col(r, "d").(*array.Date32).Value(j), arrow.Date32FromTime(block.Data[14].([]time.Time)[i]))
		nf := col(r, "nf").(*array.Float64)
		check("nf null", nf.IsNull(j), block.Data[15].([]*float64)[i] == nil)
		if !nf.IsNull(j) {
			check("nf", nf.Value(j), *block.Data[15].([]*float64)[i])
		}
		ns := col(r, "ns").(*array.String)
		check("ns null", ns.IsNull(j), block.Data[16].([]*string)[i] == nil)
		ni := col(r, "ni").(*array.Int64)
		check("ni null", ni.IsNull(j), block.Data[17].([]*int64)[i] == nil)
		af := col(r, "af").(*array.List)
		lo, hi := af.ValueOffsets(j)
		wantAF := block.Data[18].([][]float64)[i]
		check("af len", int(hi-lo), len(wantAF))
		vals := af.ListValues().(*array.Float64)
		for k := range wantAF {
			check("af", vals.Value(int(lo)+k), wantAF[k])
		}
		ast := col(r, "ast").(*array.List)
		lo, hi = ast.ValueOffsets(j)
		wantAS := block.Data[19].([][]string)[i]
		check("ast len", int(hi-lo), len(wantAS))
		for k := range wantAS {
			check("ast", ast.ListValues().(*array.String).Value(int(lo)+k), wantAS[k])
		}
		au := col(r, "au").(*array.List)
		lo, hi = au.ValueOffsets(j)
		wantAU := block.Data[21].([][]uint64)[i]
		check("au len", int(hi-lo), len(wantAU))
		for k := range wantAU {
			check("au", au.ListValues().(*array.Uint64).Value(int(lo)+k), wantAU[k])
		}
	}
}

func TestQueryArrowErrors(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	if _, err := c.QueryArrow(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Error("unknown table: no error")
	}
	if _, err := c.QueryArrow(ctx, "SELECT toDecimal64(1, 2) AS d"); err == nil {
		t.Error("unsupported type: no error")
	}
	rr, err := c.QueryArrow(ctx, "SELECT 1 AS x WHERE 0")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if rr.Next() {
		t.Error("empty result yielded a record")
	}
	if rr.Err() != nil {
		t.Error(rr.Err())
	}
	// A query that fails while streaming reports it through Err.
	rr2, err := c.QueryArrowWith(ctx, storage.ReaderConfig{BatchRows: 10}, "SELECT throwIf(number = 50000, 'boom') AS x FROM system.numbers LIMIT 100000")
	if err == nil {
		for rr2.Next() {
		}
		if rr2.Err() == nil {
			t.Error("error during streaming was not reported")
		}
		rr2.Release()
	}
}
