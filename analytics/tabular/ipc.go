package tabular

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// IPCFile streams an Arrow IPC file (Feather v2: pyarrow.feather or
// pandas.DataFrame.to_feather) one record batch at a time. Batches are read
// on demand and in any order, so memory stays bounded by a batch whatever
// the file's size; Batch is safe for concurrent use.
type IPCFile struct {
	path   string
	f      *os.File
	direct *directFile // nil unless the file is read with direct I/O
	r      *ipc.FileReader
}

// OpenIPC opens path and reads its schema and batch index. Files of
// DirectIOMin bytes or more are read with direct I/O where the platform
// and file system allow it.
func OpenIPC(path string) (*IPCFile, error) { return openIPC(path, true) }

// OpenIPCCached is OpenIPC reading through the page cache whatever the
// file's size.
func OpenIPCCached(path string) (*IPCFile, error) { return openIPC(path, false) }

func openIPC(path string, direct bool) (*IPCFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	p := &IPCFile{path: path, f: f}
	var src ipc.ReadAtSeeker = f
	if st, err := f.Stat(); direct && err == nil && st.Size() >= DirectIOMin {
		if d, err := openDirect(path, f, st.Size()); err == nil {
			p.direct, src = d, d
		}
	}
	p.r, err = ipc.NewFileReader(src, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		p.closeFiles()
		return nil, fmt.Errorf("%s: not an Arrow IPC (Feather v2) file: %w", path, err)
	}
	for _, fl := range p.r.Schema().Fields() {
		if !numericType(fl.Type) && !stringType(fl.Type) {
			p.Close()
			return nil, fmt.Errorf("%s: column %q is %s; want numbers or strings", path, fl.Name, fl.Type)
		}
	}
	return p, nil
}

// Close closes the file.
func (p *IPCFile) Close() error {
	p.r.Close()
	return p.closeFiles()
}

func (p *IPCFile) closeFiles() error {
	if p.direct != nil {
		p.direct.Close()
	}
	return p.f.Close()
}

// Fields lists the columns.
func (p *IPCFile) Fields() []arrow.Field { return p.r.Schema().Fields() }

// Numeric reports whether column i holds numbers.
func (p *IPCFile) Numeric(i int) bool { return numericType(p.Fields()[i].Type) }

// Batches is the number of record batches.
func (p *IPCFile) Batches() int { return p.r.NumRecords() }

// Batch reads record batch i; the caller releases it.
func (p *IPCFile) Batch(i int) (arrow.Record, error) {
	rec, err := p.r.RecordAt(i)
	if err != nil {
		return nil, fmt.Errorf("%s: batch %d: %w", p.path, i, err)
	}
	return rec, nil
}

// ReadIPC reads a whole Arrow IPC file into a Table.
func ReadIPC(path string) (*Table, error) {
	p, err := OpenIPC(path)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	t := &Table{}
	for _, fl := range p.Fields() {
		t.Columns = append(t.Columns, Column{Name: fl.Name, Numeric: numericType(fl.Type)})
	}
	for b := 0; b < p.Batches(); b++ {
		rec, err := p.Batch(b)
		if err != nil {
			return nil, err
		}
		for i := range t.Columns {
			c := &t.Columns[i]
			if c.Numeric {
				c.Floats = AppendFloats(c.Floats, rec.Column(i))
			} else {
				c.Strings = AppendStrings(c.Strings, rec.Column(i))
			}
		}
		t.Rows += int(rec.NumRows())
		rec.Release()
	}
	return t, nil
}

func numericType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT64, arrow.FLOAT32, arrow.INT64, arrow.INT32, arrow.INT16, arrow.INT8,
		arrow.UINT64, arrow.UINT32, arrow.UINT16, arrow.UINT8, arrow.BOOL:
		return true
	}
	return false
}

func stringType(t arrow.DataType) bool {
	return t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING
}

// AppendFloats appends a numeric Arrow array's values as float64, nulls as
// NaN.
func AppendFloats(dst []float64, a arrow.Array) []float64 {
	if f, ok := a.(*array.Float64); ok && f.NullN() == 0 {
		return append(dst, f.Float64Values()...)
	}
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			dst = append(dst, math.NaN())
			continue
		}
		dst = append(dst, floatAt(a, i))
	}
	return dst
}

func floatAt(a arrow.Array, i int) float64 {
	switch v := a.(type) {
	case *array.Float64:
		return v.Value(i)
	case *array.Float32:
		return float64(v.Value(i))
	case *array.Int64:
		return float64(v.Value(i))
	case *array.Int32:
		return float64(v.Value(i))
	case *array.Int16:
		return float64(v.Value(i))
	case *array.Int8:
		return float64(v.Value(i))
	case *array.Uint64:
		return float64(v.Value(i))
	case *array.Uint32:
		return float64(v.Value(i))
	case *array.Uint16:
		return float64(v.Value(i))
	case *array.Uint8:
		return float64(v.Value(i))
	case *array.Boolean:
		if v.Value(i) {
			return 1
		}
		return 0
	}
	return math.NaN()
}

// AppendStrings appends a string Arrow array's values (String or
// LargeString, each copied out of the array's buffers), nulls and values of
// other types as "".
func AppendStrings(dst []string, a arrow.Array) []string {
	for i := 0; i < a.Len(); i++ {
		switch v := a.(type) {
		case *array.String:
			if v.IsValid(i) {
				dst = append(dst, strings.Clone(v.Value(i)))
				continue
			}
		case *array.LargeString:
			if v.IsValid(i) {
				dst = append(dst, strings.Clone(v.Value(i)))
				continue
			}
		}
		dst = append(dst, "")
	}
	return dst
}

// WriteIPC writes t as an Arrow IPC file with batches of batchRows rows.
func WriteIPC(path string, t *Table, batchRows int) (err error) {
	fields := make([]arrow.Field, len(t.Columns))
	for i, c := range t.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: arrow.BinaryTypes.String, Nullable: true}
		if c.Numeric {
			fields[i].Type = arrow.PrimitiveTypes.Float64
		}
	}
	schema := arrow.NewSchema(fields, nil)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema))
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for lo := 0; lo < t.Rows; lo += batchRows {
		hi := min(lo+batchRows, t.Rows)
		for i, c := range t.Columns {
			if c.Numeric {
				b.Field(i).(*array.Float64Builder).AppendValues(c.Floats[lo:hi], nil)
			} else {
				b.Field(i).(*array.StringBuilder).AppendValues(c.Strings[lo:hi], nil)
			}
		}
		rec := b.NewRecord()
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return w.Close()
}
