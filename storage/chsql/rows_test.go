package chsql

import (
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// record builds a two-row record: model String, n UInt8, v Float64, q Array(Float64).
func record(t *testing.T) arrow.Record {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "model", Type: arrow.BinaryTypes.String},
		{Name: "n", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "v", Type: arrow.PrimitiveTypes.Float64},
		{Name: "q", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	t.Cleanup(b.Release)
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"fraud", "churn"}, nil)
	b.Field(1).(*array.Uint8Builder).AppendValues([]uint8{3, 4}, nil)
	b.Field(2).(*array.Float64Builder).AppendValues([]float64{0.5, 1.5}, nil)
	lb := b.Field(3).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.Float64Builder).AppendValues([]float64{1, 2}, nil)
	lb.Append(true)
	rec := b.NewRecord()
	t.Cleanup(rec.Release)
	return rec
}

// Columns are read by name, whatever their position in the result.
func TestResultReadsByName(t *testing.T) {
	var res Result
	q, v, n, model := res.Floats("q"), res.F64("v"), res.Int("n"), res.Str("model")
	if err := res.Bind(record(t)); err != nil {
		t.Fatal(err)
	}
	if model.At(1) != "churn" || n.At(1) != 4 || v.At(0) != 0.5 || len(q.At(0)) != 2 || q.At(1) != nil {
		t.Fatalf("read %q %d %v %v %v", model.At(1), n.At(1), v.At(0), q.At(0), q.At(1))
	}
}

func TestResultBindErrors(t *testing.T) {
	cases := []struct {
		name    string
		declare func(*Result)
		want    string
	}{
		{"missing column", func(r *Result) { r.Str("model"); r.F64("psi") }, `no column "psi" (it has model, n, v, q)`},
		{"wrong type", func(r *Result) { r.Str("n") }, `column "n" is uint8, want String`},
		{"not an integer", func(r *Result) { r.Int("v") }, `column "v" is float64, want an integer`},
		{"not a list", func(r *Result) { r.Strings("model") }, `column "model" is utf8, want Array(String)`},
		{"list of another type", func(r *Result) { r.Strings("q") }, `want Array(String)`},
		{"not a time", func(r *Result) { r.Time("model") }, `want DateTime`},
	}
	for _, c := range cases {
		var res Result
		c.declare(&res)
		err := res.Bind(record(t))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
