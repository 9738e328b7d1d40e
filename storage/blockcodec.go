package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
)

// Blocks are encoded for a durable queue (the collector's write-ahead log)
// as a small self-describing binary form:
//
//	block  := uvarint(len(table)) table uvarint(columns) uvarint(rows) column*
//	column := uvarint(len(name)) name kind data
//
// where data holds rows values of the column's kind, little-endian:
// fixed-width numbers back to back, a string as uvarint(len) bytes, an array
// as uvarint(len) elements. Decoding checks every length against the input,
// so a torn or corrupted record is an error, never a panic or a huge
// allocation.

// Column kinds of the encoding.
const (
	kindInt64 byte = iota + 1
	kindUint64
	kindFloat64
	kindUint32
	kindInt16
	kindUint8
	kindString
	kindStrings  // [][]string
	kindFloats64 // [][]float64
)

// ErrCorruptBlock is returned for an encoded block that cannot be decoded.
var ErrCorruptBlock = errors.New("corrupt encoded block")

// AppendBlock appends the encoding of b to dst.
func AppendBlock(dst []byte, b Block) ([]byte, error) {
	n, err := b.Rows()
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, b.Table)
	dst = binary.AppendUvarint(dst, uint64(len(b.Columns)))
	dst = binary.AppendUvarint(dst, uint64(n))
	for i, name := range b.Columns {
		dst = appendString(dst, name)
		switch col := b.Data[i].(type) {
		case []int64:
			dst = append(dst, kindInt64)
			for _, v := range col {
				dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
			}
		case []uint64:
			dst = append(dst, kindUint64)
			for _, v := range col {
				dst = binary.LittleEndian.AppendUint64(dst, v)
			}
		case []float64:
			dst = append(dst, kindFloat64)
			dst = appendFloats(dst, col)
		case []uint32:
			dst = append(dst, kindUint32)
			for _, v := range col {
				dst = binary.LittleEndian.AppendUint32(dst, v)
			}
		case []int16:
			dst = append(dst, kindInt16)
			for _, v := range col {
				dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
			}
		case []uint8:
			dst = append(dst, kindUint8)
			dst = append(dst, col...)
		case []string:
			dst = append(dst, kindString)
			for _, v := range col {
				dst = appendString(dst, v)
			}
		case [][]string:
			dst = append(dst, kindStrings)
			for _, vs := range col {
				dst = binary.AppendUvarint(dst, uint64(len(vs)))
				for _, v := range vs {
					dst = appendString(dst, v)
				}
			}
		case [][]float64:
			dst = append(dst, kindFloats64)
			for _, vs := range col {
				dst = binary.AppendUvarint(dst, uint64(len(vs)))
				dst = appendFloats(dst, vs)
			}
		default:
			return dst, fmt.Errorf("block for %s: column %s has type %T, which the encoding does not support", b.Table, name, b.Data[i])
		}
	}
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFloats(dst []byte, vs []float64) []byte {
	for _, v := range vs {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

// ReadBlock decodes one block from the start of src and returns the rest.
func ReadBlock(src []byte) (Block, []byte, error) {
	d := decoder{buf: src}
	var b Block
	b.Table = d.str()
	ncols := d.count(2) // a column takes at least a name length and a kind
	rows := d.uvarint()
	if d.err != nil {
		return Block{}, src, d.err
	}
	b.Columns = make([]string, 0, ncols)
	b.Data = make([]any, 0, ncols)
	for c := 0; c < ncols && d.err == nil; c++ {
		name := d.str()
		kind := d.byte()
		b.Columns = append(b.Columns, name)
		b.Data = append(b.Data, d.column(kind, rows))
	}
	if d.err != nil {
		return Block{}, src, d.err
	}
	if b.Table == "" || ncols == 0 {
		return Block{}, src, fmt.Errorf("%w: no table or no columns", ErrCorruptBlock)
	}
	return b, d.buf, nil
}

// decoder reads the encoding, remembering the first error.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptBlock, what)
	}
	d.buf = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a count of elements that take at least min bytes each, and
// fails unless that many could still follow.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.buf)/max(min, 1)) {
		d.fail("count larger than the input")
		return 0
	}
	return int(v)
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf) {
		d.fail("truncated")
		return nil
	}
	out := d.buf[:n:n]
	d.buf = d.buf[n:]
	return out
}

func (d *decoder) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) str() string { return string(d.take(d.count(1))) }

// fixed returns rows values of width bytes each.
func (d *decoder) fixed(rows uint64, width int) []byte {
	if rows > uint64(len(d.buf)/width) {
		d.fail("column longer than the input")
		return nil
	}
	return d.take(int(rows) * width)
}

func (d *decoder) floats(n uint64) []float64 {
	raw := d.fixed(n, 8)
	out := make([]float64, len(raw)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out
}

func (d *decoder) column(kind byte, rows uint64) any {
	switch kind {
	case kindInt64, kindUint64:
		raw := d.fixed(rows, 8)
		if kind == kindInt64 {
			out := make([]int64, len(raw)/8)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out
		}
		out := make([]uint64, len(raw)/8)
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(raw[8*i:])
		}
		return out
	case kindFloat64:
		return d.floats(rows)
	case kindUint32:
		raw := d.fixed(rows, 4)
		out := make([]uint32, len(raw)/4)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
		return out
	case kindInt16:
		raw := d.fixed(rows, 2)
		out := make([]int16, len(raw)/2)
		for i := range out {
			out[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out
	case kindUint8:
		return append([]uint8{}, d.fixed(rows, 1)...)
	case kindString:
		if rows > uint64(len(d.buf)) {
			d.fail("column longer than the input")
			return nil
		}
		out := make([]string, rows)
		for i := range out {
			out[i] = d.str()
		}
		return out
	case kindStrings:
		if rows > uint64(len(d.buf)) {
			d.fail("column longer than the input")
			return nil
		}
		out := make([][]string, rows)
		for i := range out {
			vs := make([]string, d.count(1))
			for j := range vs {
				vs[j] = d.str()
			}
			out[i] = vs
		}
		return out
	case kindFloats64:
		if rows > uint64(len(d.buf)) {
			d.fail("column longer than the input")
			return nil
		}
		out := make([][]float64, rows)
		for i := range out {
			out[i] = d.floats(uint64(d.count(8)))
		}
		return out
	}
	d.fail(fmt.Sprintf("unknown column kind %d", kind))
	return nil
}

// ReserveRows returns dst with room for n more rows in every column, so
// that appending them with AppendRows copies each value once instead of
// growing the columns step by step. An empty dst (no table yet) becomes an
// empty block of like's table, columns and column types.
func ReserveRows(dst, like Block, n int) Block {
	if dst.Table == "" {
		out := Block{Table: like.Table, Columns: like.Columns, Data: make([]any, len(like.Data))}
		for i, d := range like.Data {
			out.Data[i] = reflect.MakeSlice(reflect.TypeOf(d), 0, n).Interface()
		}
		return out
	}
	for i, d := range dst.Data {
		v := reflect.ValueOf(d)
		if v.Cap()-v.Len() >= n {
			continue
		}
		grown := reflect.MakeSlice(v.Type(), v.Len(), v.Len()+n)
		reflect.Copy(grown, v)
		dst.Data[i] = grown.Interface()
	}
	return dst
}

// AppendRows returns dst with the rows of src appended: both must be blocks
// of the same table with the same columns (src's are matched to dst's by
// name when their order differs). dst's column
// slices may be grown in place; src is not changed.
func AppendRows(dst, src Block) (Block, error) {
	if dst.Table == "" {
		out := Block{Table: src.Table, Columns: src.Columns, Data: make([]any, len(src.Data))}
		for i, d := range src.Data {
			v := reflect.ValueOf(d)
			out.Data[i] = reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()), v).Interface()
		}
		return out, nil
	}
	if dst.Table != src.Table || len(dst.Columns) != len(src.Columns) {
		return dst, fmt.Errorf("append rows of %s%v to %s%v: tables or columns differ", src.Table, src.Columns, dst.Table, dst.Columns)
	}
	if !slices.Equal(dst.Columns, src.Columns) {
		// The same columns in another order (a block queued before its
		// builder followed the table's order): align src with dst by name.
		aligned := Block{Table: src.Table, Columns: dst.Columns, Data: make([]any, len(dst.Columns))}
		for i, name := range dst.Columns {
			j := slices.Index(src.Columns, name)
			if j < 0 {
				return dst, fmt.Errorf("append rows of %s%v to %s%v: tables or columns differ", src.Table, src.Columns, dst.Table, dst.Columns)
			}
			aligned.Data[i] = src.Data[j]
		}
		src = aligned
	}
	for i := range dst.Data {
		a, b := reflect.ValueOf(dst.Data[i]), reflect.ValueOf(src.Data[i])
		if a.Type() != b.Type() {
			return dst, fmt.Errorf("append rows of %s: column %s is %s here and %s there", src.Table, src.Columns[i], a.Type(), b.Type())
		}
		dst.Data[i] = reflect.AppendSlice(a, b).Interface()
	}
	return dst, nil
}

// EncodedTable returns the table of the block encoded at the start of src.
func EncodedTable(src []byte) (string, bool) {
	d := decoder{buf: src}
	n := d.count(1)
	b := d.take(n)
	if d.err != nil || n == 0 {
		return "", false
	}
	return string(b), true
}

// ErrBlockShape is returned by AppendEncoded for a well-formed encoded
// block whose table, columns or column types differ from the block it is
// appended to.
var ErrBlockShape = errors.New("encoded block does not match the block appended to")

// Strings interns decoded strings: a value seen before is shared instead of
// allocated again (metric names, label values repeat on every row). The
// zero value is ready; Reset forgets everything.
type Strings struct {
	m map[string]string
}

// maxInterned bounds how many distinct strings a Strings keeps; past it,
// it forgets them all and starts again.
const maxInterned = 1 << 16

// maxInternedLen: longer strings are rarely repeated and are not kept.
const maxInternedLen = 128

func (s *Strings) get(b []byte) string {
	if s == nil || len(b) > maxInternedLen {
		return string(b)
	}
	if v, ok := s.m[string(b)]; ok {
		return v
	}
	v := string(b)
	if s.m == nil {
		s.m = map[string]string{}
	}
	if len(s.m) >= maxInterned {
		clear(s.m) // start again with the strings that repeat now
	}
	s.m[v] = v
	return v
}

// Reset forgets the interned strings.
func (s *Strings) Reset() { clear(s.m) }

// AppendEncoded decodes the block encoded at the start of src (AppendBlock's
// form) straight into dst's columns, without building the block first, and
// returns dst, the rows appended and the rest of src. dst must be empty (it
// then takes the encoded block's table, columns and types) or of the same
// table with the same columns (in any order, matched by name) and types.
// strs, if not nil, interns the decoded strings.
//
// On an error nothing is appended: ErrCorruptBlock (wrapped) when src is
// not a well-formed block; ErrBlockShape (wrapped) for a well-formed block
// that does not fit dst, with the rest of src after it.
func AppendEncoded(dst Block, src []byte, strs *Strings) (Block, int, []byte, error) {
	d := decoder{buf: src}
	table := d.str()
	ncols := d.count(2)
	rows := d.uvarint()
	if d.err != nil {
		return dst, 0, src, d.err
	}
	if table == "" || ncols == 0 {
		return dst, 0, src, fmt.Errorf("%w: no table or no columns", ErrCorruptBlock)
	}
	if rows > uint64(len(d.buf)) {
		return dst, 0, src, fmt.Errorf("%w: more rows than the input holds", ErrCorruptBlock)
	}
	fresh := dst.Table == ""
	if fresh {
		dst = Block{Table: table, Columns: make([]string, 0, ncols), Data: make([]any, 0, ncols)}
	} else if dst.Table != table || len(dst.Columns) != ncols {
		err := shapeMismatch(src, fmt.Errorf("%w: %s with %d columns appended to %s with %d", ErrBlockShape, table, ncols, dst.Table, len(dst.Columns)))
		rest := src
		if errors.Is(err, ErrBlockShape) {
			_, rest, _ = ReadBlock(src)
		}
		return dst, 0, rest, err
	}
	before := 0
	if !fresh {
		before, _ = dst.Rows()
	}
	var filled uint64 // bit i: column i of dst was decoded (ncols ≤ 64 on the fast path)
	var filledMany []bool
	if ncols > 64 {
		filledMany = make([]bool, ncols)
	}
	fail := func(err error) (Block, int, []byte, error) {
		rest := src
		if errors.Is(err, ErrBlockShape) {
			_, rest, _ = ReadBlock(src) // well-formed: shapeMismatch checked
		}
		if fresh {
			return Block{}, 0, rest, err
		}
		return TruncateRows(dst, before), 0, rest, err
	}
	for c := 0; c < ncols; c++ {
		name := d.str()
		kind := d.byte()
		if d.err != nil {
			return fail(d.err)
		}
		j := c
		if fresh {
			dst.Columns = append(dst.Columns, name)
			dst.Data = append(dst.Data, emptyColumn(kind, int(rows)))
			if dst.Data[j] == nil {
				return fail(fmt.Errorf("%w: unknown column kind %d", ErrCorruptBlock, kind))
			}
		} else {
			if dst.Columns[c] != name {
				if j = slices.Index(dst.Columns, name); j < 0 {
					return fail(shapeMismatch(src, fmt.Errorf("%w: %s has no column %s", ErrBlockShape, dst.Table, name)))
				}
			}
			if ncols <= 64 {
				if filled&(1<<j) != 0 {
					return fail(shapeMismatch(src, fmt.Errorf("%w: column %s twice", ErrBlockShape, name)))
				}
				filled |= 1 << j
			} else {
				if filledMany[j] {
					return fail(shapeMismatch(src, fmt.Errorf("%w: column %s twice", ErrBlockShape, name)))
				}
				filledMany[j] = true
			}
		}
		col, ok := d.appendColumn(dst.Data[j], kind, rows, strs)
		if !ok {
			if d.err != nil {
				return fail(d.err)
			}
			return fail(shapeMismatch(src, fmt.Errorf("%w: column %s of %s is %T here, kind %d there", ErrBlockShape, name, table, dst.Data[j], kind)))
		}
		dst.Data[j] = col
	}
	return dst, int(rows), d.buf, nil
}

// shapeMismatch is the error for a block at the start of src that does not
// fit: err if the block is well-formed, else its decoding error.
func shapeMismatch(src []byte, err error) error {
	if _, _, derr := ReadBlock(src); derr != nil {
		return derr
	}
	return err
}

// emptyColumn returns an empty column of kind with room for n rows, or nil
// for an unknown kind.
func emptyColumn(kind byte, n int) any {
	switch kind {
	case kindInt64:
		return make([]int64, 0, n)
	case kindUint64:
		return make([]uint64, 0, n)
	case kindFloat64:
		return make([]float64, 0, n)
	case kindUint32:
		return make([]uint32, 0, n)
	case kindInt16:
		return make([]int16, 0, n)
	case kindUint8:
		return make([]uint8, 0, n)
	case kindString:
		return make([]string, 0, n)
	case kindStrings:
		return make([][]string, 0, n)
	case kindFloats64:
		return make([][]float64, 0, n)
	}
	return nil
}

// appendColumn decodes rows values of kind onto col. It returns false when
// col is not of kind (d.err unset) or the input is bad (d.err set).
func (d *decoder) appendColumn(col any, kind byte, rows uint64, strs *Strings) (any, bool) {
	switch c := col.(type) {
	case []int64:
		if kind != kindInt64 {
			return col, false
		}
		raw := d.fixed(rows, 8)
		if d.err != nil {
			return col, false
		}
		c = slices.Grow(c, len(raw)/8)
		for i := 0; i < len(raw); i += 8 {
			c = append(c, int64(binary.LittleEndian.Uint64(raw[i:])))
		}
		return c, true
	case []uint64:
		if kind != kindUint64 {
			return col, false
		}
		raw := d.fixed(rows, 8)
		if d.err != nil {
			return col, false
		}
		c = slices.Grow(c, len(raw)/8)
		for i := 0; i < len(raw); i += 8 {
			c = append(c, binary.LittleEndian.Uint64(raw[i:]))
		}
		return c, true
	case []float64:
		if kind != kindFloat64 {
			return col, false
		}
		raw := d.fixed(rows, 8)
		if d.err != nil {
			return col, false
		}
		c = slices.Grow(c, len(raw)/8)
		for i := 0; i < len(raw); i += 8 {
			c = append(c, math.Float64frombits(binary.LittleEndian.Uint64(raw[i:])))
		}
		return c, true
	case []uint32:
		if kind != kindUint32 {
			return col, false
		}
		raw := d.fixed(rows, 4)
		if d.err != nil {
			return col, false
		}
		c = slices.Grow(c, len(raw)/4)
		for i := 0; i < len(raw); i += 4 {
			c = append(c, binary.LittleEndian.Uint32(raw[i:]))
		}
		return c, true
	case []int16:
		if kind != kindInt16 {
			return col, false
		}
		raw := d.fixed(rows, 2)
		if d.err != nil {
			return col, false
		}
		c = slices.Grow(c, len(raw)/2)
		for i := 0; i < len(raw); i += 2 {
			c = append(c, int16(binary.LittleEndian.Uint16(raw[i:])))
		}
		return c, true
	case []uint8:
		if kind != kindUint8 {
			return col, false
		}
		raw := d.fixed(rows, 1)
		if d.err != nil {
			return col, false
		}
		return append(c, raw...), true
	case []string:
		if kind != kindString {
			return col, false
		}
		c = slices.Grow(c, int(rows))
		for i := uint64(0); i < rows; i++ {
			b := d.take(d.count(1))
			if d.err != nil {
				return col, false
			}
			c = append(c, strs.get(b))
		}
		return c, true
	case [][]string:
		if kind != kindStrings {
			return col, false
		}
		c = slices.Grow(c, int(rows))
		for i := uint64(0); i < rows; i++ {
			vs := make([]string, d.count(1))
			for k := range vs {
				vs[k] = strs.get(d.take(d.count(1)))
			}
			if d.err != nil {
				return col, false
			}
			c = append(c, vs)
		}
		return c, true
	case [][]float64:
		if kind != kindFloats64 {
			return col, false
		}
		c = slices.Grow(c, int(rows))
		for i := uint64(0); i < rows; i++ {
			vs := d.floats(uint64(d.count(8)))
			if d.err != nil {
				return col, false
			}
			c = append(c, vs)
		}
		return c, true
	}
	return col, false
}

// TruncateRows returns b with only its first n rows, keeping the columns'
// memory (for reuse: TruncateRows(b, 0) empties a block).
func TruncateRows(b Block, n int) Block {
	for i, d := range b.Data {
		switch c := d.(type) {
		case []int64:
			b.Data[i] = c[:n]
		case []uint64:
			b.Data[i] = c[:n]
		case []float64:
			b.Data[i] = c[:n]
		case []uint32:
			b.Data[i] = c[:n]
		case []int16:
			b.Data[i] = c[:n]
		case []uint8:
			b.Data[i] = c[:n]
		case []string:
			clear(c[n:])
			b.Data[i] = c[:n]
		case [][]string:
			clear(c[n:])
			b.Data[i] = c[:n]
		case [][]float64:
			clear(c[n:])
			b.Data[i] = c[:n]
		default:
			v := reflect.ValueOf(d)
			b.Data[i] = v.Slice(0, n).Interface()
		}
	}
	return b
}
