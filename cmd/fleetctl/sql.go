package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
)

// runSQL runs one query against the configured ClickHouse and prints the
// result as an aligned table, CSV or JSON (one object per row).
func runSQL(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sql")
	resolve := chFlags(fs)
	format := fs.String("format", "table", "output format: table, csv or json")
	file := fs.String("file", "", "read the query from this file (- for stdin) instead of the argument")
	// The query is the one positional argument; flags may come before or after it.
	query := ""
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has said why
	}
	rest := fs.Args()
	if len(rest) > 0 {
		query = rest[0]
		rest = rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	switch *format {
	case "table", "csv", "json":
	default:
		fmt.Fprintf(e.stderr, "--format %q: want table, csv or json\n", *format)
		return errUsage
	}
	if *file != "" {
		if query != "" {
			fmt.Fprintln(e.stderr, "give the query either as an argument or with --file, not both")
			return errUsage
		}
		data, err := readQueryFile(*file)
		if err != nil {
			return err
		}
		query = string(data)
	}
	query = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(query), ";"))
	if query == "" {
		fmt.Fprintln(e.stderr, "no query: fleetctl sql [flags] 'SELECT ...'")
		fs.Usage()
		return errUsage
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	c, err := storage.Open(ctx, cfg, storage.WithLogger(logger(e)))
	if err != nil {
		return fmt.Errorf("%w\n(is ClickHouse running? `fleetctl demo` starts a local one; `fleetctl migrate` creates the database)", err)
	}
	defer c.Close()
	res, err := querySQL(ctx, c, query)
	if err != nil {
		return err
	}
	switch *format {
	case "csv":
		return res.writeCSV(e.stdout)
	case "json":
		return res.writeJSON(e.stdout)
	}
	return res.writeTable(e.stdout)
}

func readQueryFile(path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read query from stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read query: %w", err)
	}
	return data, nil
}

// sqlResult is a query's result, every value kept as scanned.
type sqlResult struct {
	columns []string
	rows    [][]any
}

func querySQL(ctx context.Context, c *storage.Client, query string) (*sqlResult, error) {
	rows, err := c.Conn().Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("query failed: %w", err)
	}
	defer rows.Close()
	res := &sqlResult{columns: rows.Columns()}
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read result: %w", err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = reflect.ValueOf(d).Elem().Interface()
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	return res, nil
}

func numbers(b []byte) []int {
	n := make([]int, len(b))
	for i, v := range b {
		n[i] = int(v)
	}
	return n
}

// text renders one value for the table and CSV formats.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.DateTime)
	case []byte: // Array(UInt8): show the numbers, not bytes
		return text(numbers(x))
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		return text(rv.Elem().Interface())
	}
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map {
		if b, err := json.Marshal(v); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

func (r *sqlResult) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.columns, "\t"))
	under := make([]string, len(r.columns))
	for i, c := range r.columns {
		under[i] = strings.Repeat("-", len(c))
	}
	fmt.Fprintln(tw, strings.Join(under, "\t"))
	for _, row := range r.rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(text(v))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	_, err := fmt.Fprintf(w, "(%d row%s)\n", len(r.rows), plural(len(r.rows)))
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (r *sqlResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	err := cw.Write(r.columns)
	for _, row := range r.rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = text(v)
		}
		err = errors.Join(err, cw.Write(cells))
	}
	cw.Flush()
	if err = errors.Join(err, cw.Error()); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// writeJSON writes one JSON object per row (JSON Lines), keys in column
// order; NaN and ±Inf, which JSON cannot hold, become strings.
func (r *sqlResult) writeJSON(w io.Writer) error {
	for _, row := range r.rows {
		var b strings.Builder
		b.WriteByte('{')
		for i, v := range row {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(r.columns[i])
			b.Write(k)
			b.WriteByte(':')
			switch x := v.(type) {
			case time.Time:
				v = x.UTC().Format(time.RFC3339)
			case []byte:
				v = numbers(x)
			}
			val, err := json.Marshal(v)
			if err != nil {
				val, _ = json.Marshal(text(v))
			}
			b.Write(val)
		}
		b.WriteString("}\n")
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	return nil
}
