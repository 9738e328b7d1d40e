// Package tabular reads the tables users bring to fleetctl drift and
// fleetctl spc and to the analyzer's file references: CSV with a header row
// (an empty cell is missing; a column is numeric when every non-empty cell
// is a number, else a string column) and Parquet (numeric and string
// columns, read whole or streamed one column chunk at a time).
package tabular

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Column is one column of a Table. A numeric column holds Floats (NaN for
// missing); a string column holds Strings ("" for missing).
type Column struct {
	Name    string
	Numeric bool
	Floats  []float64
	Strings []string
}

// Len is the number of rows.
func (c *Column) Len() int {
	if c.Numeric {
		return len(c.Floats)
	}
	return len(c.Strings)
}

// Table is a file's columns, all of the same length.
type Table struct {
	Columns []Column
	Rows    int
}

// Column returns the named column.
func (t *Table) Column(name string) (*Column, bool) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], true
		}
	}
	return nil, false
}

// Names lists the column names.
func (t *Table) Names() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// ReadFile reads a .csv or .parquet file by its extension.
func ReadFile(path string) (*Table, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".arrow", ".feather", ".ipc":
		return ReadIPC(path)
	case ".parquet", ".pq":
		return nil, fmt.Errorf("%s: Parquet is not supported yet; convert it to Arrow IPC (pyarrow.feather.write_feather(table, %q)) or CSV",
			path, strings.TrimSuffix(path, filepath.Ext(path))+".arrow")
	case ".csv", ".txt", "":
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		br := bufio.NewReader(f)
		if head, _ := br.Peek(4); sniff(head) {
			return nil, fmt.Errorf("%s: this is a Parquet file, not CSV; convert it to Arrow IPC (.arrow) or CSV", path)
		}
		t, err := ReadCSV(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("%s: unknown file type %q; want .csv or .arrow (Arrow IPC / Feather v2)", path, filepath.Ext(path))
}

// ErrEmpty is returned for a file without a header row.
var ErrEmpty = errors.New("empty file: want a header row naming the columns")

// ReadCSV reads CSV with a header row. Every row must have as many cells as
// the header; errors name the line.
func ReadCSV(r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, ErrEmpty
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	names := make([]string, len(header))
	seen := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		switch {
		case h == "":
			return nil, fmt.Errorf("header: column %d has no name", i+1)
		case !utf8.ValidString(h):
			return nil, fmt.Errorf("header: column %d's name is not UTF-8", i+1)
		}
		if j, dup := seen[h]; dup {
			return nil, fmt.Errorf("header: column %q appears twice (columns %d and %d)", h, j+1, i+1)
		}
		seen[h] = i
		names[i] = h
	}
	cells := make([][]string, len(names))
	// encoding/csv skips blank lines. In a one-column file a blank line is
	// an empty cell, a missing value, and must not vanish; in a wider file
	// it is a malformed row. Trailing blank lines are ignored.
	prevEnd := endLine(cr, header)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				return nil, fmt.Errorf("line %d: %d cells, but the header has %d columns", pe.Line, len(rec), len(names))
			}
			return nil, err
		}
		start, _ := cr.FieldPos(0)
		if gap := start - prevEnd - 1; gap > 0 {
			if len(names) > 1 {
				return nil, fmt.Errorf("line %d: empty line, but the header has %d columns", prevEnd+1, len(names))
			}
			for ; gap > 0; gap-- {
				cells[0] = append(cells[0], "")
			}
		}
		prevEnd = endLine(cr, rec)
		for i, v := range rec {
			cells[i] = append(cells[i], strings.Clone(strings.TrimSpace(v)))
		}
	}
	t := &Table{Rows: len(cells[0])}
	for i, name := range names {
		t.Columns = append(t.Columns, typed(name, cells[i]))
	}
	return t, nil
}

// endLine is the line on which the record just read ends: where its last
// field starts, plus the newlines inside that (quoted) field.
func endLine(cr *csv.Reader, rec []string) int {
	line, _ := cr.FieldPos(len(rec) - 1)
	return line + strings.Count(rec[len(rec)-1], "\n")
}

// typed makes a numeric column when every non-empty cell is a number.
func typed(name string, cells []string) Column {
	floats := make([]float64, len(cells))
	for i, v := range cells {
		if v == "" {
			floats[i] = math.NaN()
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Column{Name: name, Strings: cells}
		}
		floats[i] = f
	}
	return Column{Name: name, Numeric: true, Floats: floats}
}

// WriteCSV writes t as CSV (used by tests and tools to produce inputs).
func WriteCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Names()); err != nil {
		return err
	}
	rec := make([]string, len(t.Columns))
	for r := 0; r < t.Rows; r++ {
		for i := range t.Columns {
			c := &t.Columns[i]
			switch {
			case !c.Numeric:
				rec[i] = c.Strings[r]
			case math.IsNaN(c.Floats[r]):
				rec[i] = ""
			default:
				rec[i] = strconv.FormatFloat(c.Floats[r], 'g', -1, 64)
			}
		}
		if len(rec) == 1 && rec[0] == "" {
			// csv.Writer would write a blank line, which a reader may skip.
			cw.Flush()
			if _, err := io.WriteString(w, "\"\"\n"); err != nil {
				return err
			}
			continue
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// sniff reports whether data starts like a Parquet file.
func sniff(data []byte) bool { return bytes.HasPrefix(data, []byte("PAR1")) }
