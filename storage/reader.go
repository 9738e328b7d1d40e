package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// ReaderConfig tunes QueryArrow.
type ReaderConfig struct {
	// BatchRows is the most rows per Arrow record (default 65536).
	BatchRows int
	// Allocator for Arrow buffers (default memory.DefaultAllocator).
	Allocator memory.Allocator
}

// DefaultBatchRows is the default Arrow record size.
const DefaultBatchRows = 1 << 16

// QueryArrow runs query with the default ReaderConfig.
func (c *Client) QueryArrow(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	return c.QueryArrowWith(ctx, ReaderConfig{}, query, args...)
}

// QueryArrowWith runs query and streams its result as Arrow records of at most
// cfg.BatchRows rows. Rows are converted as the driver decodes each block, so a
// large result is never held in full, neither by the driver nor as Arrow. The
// caller must Release the reader; each Record is valid until the next call to
// Next unless retained.
//
// Types: Float32/64, (U)Int8-64, Bool, String, FixedString, LowCardinality,
// Enum and UUID (as strings), DateTime and DateTime64 (timestamps, UTC), Date
// (date32), Nullable of those (with validity bitmaps) and Array of those.
func (c *Client) QueryArrowWith(ctx context.Context, cfg ReaderConfig, query string, args ...any) (array.RecordReader, error) {
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	if cfg.Allocator == nil {
		cfg.Allocator = memory.DefaultAllocator
	}
	rows, err := c.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", snippet(query), err)
	}
	types := rows.ColumnTypes()
	fields := make([]arrow.Field, len(types))
	cols := make([]column, len(types))
	dests := make([]any, len(types))
	for i, ct := range types {
		t, err := parseType(ct.DatabaseTypeName())
		if err == nil {
			fields[i].Type, cols[i], err = newColumn(t)
		}
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("query %s: column %s: %w", snippet(query), ct.Name(), err)
		}
		fields[i].Name = ct.Name()
		fields[i].Nullable = t.nullable
		dests[i] = cols[i].dest()
	}
	schema := arrow.NewSchema(fields, nil)
	s := &recordStream{rows: rows, schema: schema, cols: cols, dests: dests, batch: cfg.BatchRows,
		rb: array.NewRecordBuilder(cfg.Allocator, schema)}
	s.refs.Store(1)
	return s, nil
}

type recordStream struct {
	refs   atomic.Int64
	rows   driver.Rows
	schema *arrow.Schema
	cols   []column
	dests  []any
	rb     *array.RecordBuilder
	rec    arrow.Record
	batch  int
	err    error
	done   bool
}

func (s *recordStream) Retain()               { s.refs.Add(1) }
func (s *recordStream) Schema() *arrow.Schema { return s.schema }
func (s *recordStream) Record() arrow.Record  { return s.rec }
func (s *recordStream) Err() error            { return s.err }

func (s *recordStream) Release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	s.finish()
	s.rb.Release()
}

func (s *recordStream) finish() {
	if !s.done {
		s.done = true
		s.rows.Close()
	}
}

func (s *recordStream) Next() bool {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	if s.done {
		return false
	}
	n := 0
	for n < s.batch && s.rows.Next() {
		if err := s.rows.Scan(s.dests...); err != nil {
			s.err = fmt.Errorf("scan row: %w", err)
			s.finish()
			return false
		}
		for i, c := range s.cols {
			c.append(s.rb.Field(i))
		}
		n++
	}
	if n < s.batch {
		if err := s.rows.Err(); err != nil {
			s.err = fmt.Errorf("read result: %w", err)
		}
		s.finish()
	}
	if n == 0 || s.err != nil {
		return false
	}
	s.rec = s.rb.NewRecord()
	return true
}

// chType is a parsed ClickHouse type name.
type chType struct {
	base     string // Float64, String, DateTime64, Array, ...
	nullable bool
	elem     *chType // Array element
	param    string  // DateTime64 precision
}

func parseType(s string) (chType, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return chType{base: s}, nil
	}
	if !strings.HasSuffix(s, ")") {
		return chType{}, fmt.Errorf("unparsable type %q", s)
	}
	name, inner := s[:open], s[open+1:len(s)-1]
	switch name {
	case "Nullable":
		t, err := parseType(inner)
		t.nullable = true
		return t, err
	case "LowCardinality":
		return parseType(inner)
	case "Array":
		e, err := parseType(inner)
		if err != nil {
			return chType{}, err
		}
		return chType{base: "Array", elem: &e}, nil
	case "FixedString", "Enum8", "Enum16":
		return chType{base: "String"}, nil
	case "DateTime":
		return chType{base: "DateTime"}, nil
	case "DateTime64":
		p, _, _ := strings.Cut(inner, ",")
		return chType{base: "DateTime64", param: strings.TrimSpace(p)}, nil
	}
	return chType{}, fmt.Errorf("unsupported type %q", s)
}

// column scans one result column and appends it to an Arrow builder.
type column interface {
	dest() any
	append(b array.Builder)
}

type appender[T any] interface {
	Append(T)
	AppendNull()
}

// prim is a column whose Go scan type is also the Arrow value type.
type prim[T any, B appender[T]] struct {
	v        T
	p        *T
	nullable bool
}

func (c *prim[T, B]) dest() any {
	if c.nullable {
		return &c.p
	}
	return &c.v
}

func (c *prim[T, B]) append(b array.Builder) {
	bb := b.(B)
	switch {
	case !c.nullable:
		bb.Append(c.v)
	case c.p == nil:
		bb.AppendNull()
	default:
		bb.Append(*c.p)
	}
}

// list is an Array(T) column of a primitive element type.
type list[T any, B appender[T]] struct{ v []T }

func (c *list[T, B]) dest() any { return &c.v }

func (c *list[T, B]) append(b array.Builder) {
	lb := b.(*array.ListBuilder)
	lb.Append(true)
	vb := lb.ValueBuilder().(B)
	for _, x := range c.v {
		vb.Append(x)
	}
}

// timeCol converts time.Time to an Arrow timestamp or date32.
type timeCol struct {
	v        time.Time
	p        *time.Time
	nullable bool
	unit     arrow.TimeUnit
	date     bool
}

func (c *timeCol) dest() any {
	if c.nullable {
		return &c.p
	}
	return &c.v
}

func (c *timeCol) append(b array.Builder) {
	t := c.v
	if c.nullable {
		if c.p == nil {
			b.AppendNull()
			return
		}
		t = *c.p
	}
	if c.date {
		b.(*array.Date32Builder).Append(arrow.Date32FromTime(t))
		return
	}
	var v int64
	switch c.unit {
	case arrow.Second:
		v = t.Unix()
	case arrow.Millisecond:
		v = t.UnixMilli()
	case arrow.Microsecond:
		v = t.UnixMicro()
	default:
		v = t.UnixNano()
	}
	b.(*array.TimestampBuilder).Append(arrow.Timestamp(v))
}

func newColumn(t chType) (arrow.DataType, column, error) {
	n := t.nullable
	switch t.base {
	case "Float64":
		return arrow.PrimitiveTypes.Float64, &prim[float64, *array.Float64Builder]{nullable: n}, nil
	case "Float32":
		return arrow.PrimitiveTypes.Float32, &prim[float32, *array.Float32Builder]{nullable: n}, nil
	case "Int64":
		return arrow.PrimitiveTypes.Int64, &prim[int64, *array.Int64Builder]{nullable: n}, nil
	case "Int32":
		return arrow.PrimitiveTypes.Int32, &prim[int32, *array.Int32Builder]{nullable: n}, nil
	case "Int16":
		return arrow.PrimitiveTypes.Int16, &prim[int16, *array.Int16Builder]{nullable: n}, nil
	case "Int8":
		return arrow.PrimitiveTypes.Int8, &prim[int8, *array.Int8Builder]{nullable: n}, nil
	case "UInt64":
		return arrow.PrimitiveTypes.Uint64, &prim[uint64, *array.Uint64Builder]{nullable: n}, nil
	case "UInt32":
		return arrow.PrimitiveTypes.Uint32, &prim[uint32, *array.Uint32Builder]{nullable: n}, nil
	case "UInt16":
		return arrow.PrimitiveTypes.Uint16, &prim[uint16, *array.Uint16Builder]{nullable: n}, nil
	case "UInt8":
		return arrow.PrimitiveTypes.Uint8, &prim[uint8, *array.Uint8Builder]{nullable: n}, nil
	case "Bool":
		return arrow.FixedWidthTypes.Boolean, &prim[bool, *array.BooleanBuilder]{nullable: n}, nil
	case "String", "UUID":
		return arrow.BinaryTypes.String, &prim[string, *array.StringBuilder]{nullable: n}, nil
	case "DateTime":
		return &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}, &timeCol{nullable: n, unit: arrow.Second}, nil
	case "DateTime64":
		p, err := strconv.Atoi(t.param)
		if err != nil {
			return nil, nil, fmt.Errorf("DateTime64 precision %q", t.param)
		}
		unit := arrow.Nanosecond
		switch {
		case p == 0:
			unit = arrow.Second
		case p <= 3:
			unit = arrow.Millisecond
		case p <= 6:
			unit = arrow.Microsecond
		}
		return &arrow.TimestampType{Unit: unit, TimeZone: "UTC"}, &timeCol{nullable: n, unit: unit}, nil
	case "Date", "Date32":
		return arrow.FixedWidthTypes.Date32, &timeCol{nullable: n, date: true}, nil
	case "Array":
		if t.elem == nil {
			return nil, nil, errors.New("Array without an element type")
		}
		return newListColumn(*t.elem)
	}
	return nil, nil, fmt.Errorf("unsupported type %s", t.base)
}

func newListColumn(e chType) (arrow.DataType, column, error) {
	if e.nullable {
		return nil, nil, errors.New("Array(Nullable(...)) is not supported")
	}
	switch e.base {
	case "Float64":
		return arrow.ListOf(arrow.PrimitiveTypes.Float64), &list[float64, *array.Float64Builder]{}, nil
	case "Float32":
		return arrow.ListOf(arrow.PrimitiveTypes.Float32), &list[float32, *array.Float32Builder]{}, nil
	case "Int64":
		return arrow.ListOf(arrow.PrimitiveTypes.Int64), &list[int64, *array.Int64Builder]{}, nil
	case "UInt64":
		return arrow.ListOf(arrow.PrimitiveTypes.Uint64), &list[uint64, *array.Uint64Builder]{}, nil
	case "UInt32":
		return arrow.ListOf(arrow.PrimitiveTypes.Uint32), &list[uint32, *array.Uint32Builder]{}, nil
	case "String", "UUID":
		return arrow.ListOf(arrow.BinaryTypes.String), &list[string, *array.StringBuilder]{}, nil
	}
	return nil, nil, fmt.Errorf("unsupported array element type %s", e.base)
}
