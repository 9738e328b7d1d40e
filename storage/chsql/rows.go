package chsql

import (
	"context"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// Querier runs a query and returns its result as Arrow records;
// *storage.Client is one.
type Querier interface {
	QueryArrow(ctx context.Context, query string, args ...any) (array.RecordReader, error)
}

// ForRows runs sql through the Arrow reader and calls row for every row of
// every record.
func ForRows(ctx context.Context, c Querier, sql string, row func(rec arrow.Record, r int)) error {
	rr, err := c.QueryArrow(ctx, sql)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		for r := 0; r < int(rec.NumRows()); r++ {
			row(rec, r)
		}
	}
	return rr.Err()
}

// Str is the string in column col, row r.
func Str(rec arrow.Record, col, r int) string { return rec.Column(col).(*array.String).Value(r) }

// F64 is the Float64 in column col, row r.
func F64(rec arrow.Record, col, r int) float64 { return rec.Column(col).(*array.Float64).Value(r) }

// Int is the integer in column col, row r, whatever its width and sign
// (ClickHouse picks the narrowest type for count(), transform(), ...).
func Int(rec arrow.Record, col, r int) int64 {
	switch a := rec.Column(col).(type) {
	case *array.Uint8:
		return int64(a.Value(r))
	case *array.Uint16:
		return int64(a.Value(r))
	case *array.Uint32:
		return int64(a.Value(r))
	case *array.Uint64:
		return int64(a.Value(r))
	case *array.Int8:
		return int64(a.Value(r))
	case *array.Int16:
		return int64(a.Value(r))
	case *array.Int32:
		return int64(a.Value(r))
	case *array.Int64:
		return a.Value(r)
	default:
		panic(fmt.Sprintf("chsql.Int: column %d is %s", col, a.DataType()))
	}
}

// FloatList is the Array(Float64) in column col, row r (a copy).
func FloatList(rec arrow.Record, col, r int) []float64 {
	l := rec.Column(col).(*array.List)
	lo, hi := l.ValueOffsets(r)
	return append([]float64(nil), l.ListValues().(*array.Float64).Float64Values()[lo:hi]...)
}

// Seconds is the DateTime in column col, row r, as Unix seconds.
func Seconds(rec arrow.Record, col, r int) int64 {
	return int64(rec.Column(col).(*array.Timestamp).Value(r))
}
