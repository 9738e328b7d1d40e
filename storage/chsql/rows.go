package chsql

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// Querier runs a query and returns its result as Arrow records;
// *storage.Client is one.
type Querier interface {
	QueryArrow(ctx context.Context, query string, args ...any) (array.RecordReader, error)
}

// Result reads a query's result by column name: the one way Fleetwatch
// reads a result. Declare the columns a row needs (Str, F64, Int, Time,
// Floats, Strings) next to the SELECT that names them, then run ForRows;
// it resolves each name to its column once per record, checked against
// the record's schema, and fails naming a column the result lacks or holds
// with another type, before any row of that record is read.
//
//	var res chsql.Result
//	model, n := res.Str("model"), res.Int("n")
//	err := res.ForRows(ctx, c, "SELECT model, count() AS n FROM ... GROUP BY model", func(r int) {
//		counts[model.At(r)] = n.At(r)
//	})
type Result struct {
	cols []binder
}

// binder is a declared column: it takes its array from each record.
type binder interface {
	name() string
	bind(a arrow.Array) error
}

// named is the part every column kind shares.
type named struct{ col string }

func (n named) name() string { return n.col }

func wrongType(a arrow.Array, want string) error {
	return fmt.Errorf("is %s, want %s", a.DataType(), want)
}

// StrCol is a String column.
type StrCol struct {
	named
	a *array.String
}

func (c *StrCol) bind(a arrow.Array) error {
	if c.a, _ = a.(*array.String); c.a == nil {
		return wrongType(a, "String")
	}
	return nil
}

// At is the value in row r.
func (c *StrCol) At(r int) string { return c.a.Value(r) }

// F64Col is a Float64 column.
type F64Col struct {
	named
	a *array.Float64
}

func (c *F64Col) bind(a arrow.Array) error {
	if c.a, _ = a.(*array.Float64); c.a == nil {
		return wrongType(a, "Float64")
	}
	return nil
}

// At is the value in row r.
func (c *F64Col) At(r int) float64 { return c.a.Value(r) }

// IntCol is an integer column of any width and sign (ClickHouse picks the
// narrowest type for count(), transform(), ...).
type IntCol struct {
	named
	at func(r int) int64
}

func (c *IntCol) bind(a arrow.Array) error {
	switch a := a.(type) {
	case *array.Uint8:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Uint16:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Uint32:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Uint64:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Int8:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Int16:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Int32:
		c.at = func(r int) int64 { return int64(a.Value(r)) }
	case *array.Int64:
		c.at = a.Value
	default:
		return wrongType(a, "an integer")
	}
	return nil
}

// At is the value in row r.
func (c *IntCol) At(r int) int64 { return c.at(r) }

// TimeCol is a DateTime column.
type TimeCol struct {
	named
	a *array.Timestamp
}

func (c *TimeCol) bind(a arrow.Array) error {
	if c.a, _ = a.(*array.Timestamp); c.a == nil {
		return wrongType(a, "DateTime")
	}
	return nil
}

// Seconds is the value in row r as Unix seconds.
func (c *TimeCol) Seconds(r int) int64 { return int64(c.a.Value(r)) }

// FloatsCol is an Array(Float64) column.
type FloatsCol struct {
	named
	l    *array.List
	vals *array.Float64
}

func (c *FloatsCol) bind(a arrow.Array) error {
	if c.l, _ = a.(*array.List); c.l != nil {
		c.vals, _ = c.l.ListValues().(*array.Float64)
	}
	if c.vals == nil {
		return wrongType(a, "Array(Float64)")
	}
	return nil
}

// At is a copy of the array in row r; nil when it is empty.
func (c *FloatsCol) At(r int) []float64 {
	lo, hi := c.l.ValueOffsets(r)
	return append([]float64(nil), c.vals.Float64Values()[lo:hi]...)
}

// StringsCol is an Array(String) column.
type StringsCol struct {
	named
	l    *array.List
	vals *array.String
}

func (c *StringsCol) bind(a arrow.Array) error {
	if c.l, _ = a.(*array.List); c.l != nil {
		c.vals, _ = c.l.ListValues().(*array.String)
	}
	if c.vals == nil {
		return wrongType(a, "Array(String)")
	}
	return nil
}

// At is a copy of the array in row r; nil when it is empty.
func (c *StringsCol) At(r int) []string {
	lo, hi := c.l.ValueOffsets(r)
	var out []string
	for i := lo; i < hi; i++ {
		out = append(out, c.vals.Value(int(i)))
	}
	return out
}

func declare[C binder](res *Result, c C) C {
	res.cols = append(res.cols, c)
	return c
}

// Str declares the String column name.
func (res *Result) Str(name string) *StrCol { return declare(res, &StrCol{named: named{name}}) }

// F64 declares the Float64 column name.
func (res *Result) F64(name string) *F64Col { return declare(res, &F64Col{named: named{name}}) }

// Int declares the integer column name.
func (res *Result) Int(name string) *IntCol { return declare(res, &IntCol{named: named{name}}) }

// Time declares the DateTime column name.
func (res *Result) Time(name string) *TimeCol { return declare(res, &TimeCol{named: named{name}}) }

// Floats declares the Array(Float64) column name.
func (res *Result) Floats(name string) *FloatsCol {
	return declare(res, &FloatsCol{named: named{name}})
}

// Strings declares the Array(String) column name.
func (res *Result) Strings(name string) *StringsCol {
	return declare(res, &StringsCol{named: named{name}})
}

// Bind points the declared columns at rec's columns of the same names. It
// fails, naming the column, when rec lacks one, has it twice, or holds it
// with another type.
func (res *Result) Bind(rec arrow.Record) error {
	sc := rec.Schema()
	for _, c := range res.cols {
		idx := sc.FieldIndices(c.name())
		switch {
		case len(idx) == 0:
			names := make([]string, sc.NumFields())
			for i, f := range sc.Fields() {
				names[i] = f.Name
			}
			return fmt.Errorf("query result has no column %q (it has %s)", c.name(), strings.Join(names, ", "))
		case len(idx) > 1:
			return fmt.Errorf("query result has %d columns named %q", len(idx), c.name())
		}
		if err := c.bind(rec.Column(idx[0])); err != nil {
			return fmt.Errorf("query result column %q %w", c.name(), err)
		}
	}
	return nil
}

// ForRows runs sql through the Arrow reader, binds the declared columns to
// each record and calls row for every row of it.
func (res *Result) ForRows(ctx context.Context, q Querier, sql string, row func(r int)) error {
	rr, err := q.QueryArrow(ctx, sql)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		if err := res.Bind(rec); err != nil {
			return err
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			row(r)
		}
	}
	return rr.Err()
}
