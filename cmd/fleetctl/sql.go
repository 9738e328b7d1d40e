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
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// runSQL runs one statement against the configured ClickHouse. A query
// (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN) prints its result as an
// aligned table, CSV or JSON (one object per row); any other statement
// (DDL, INSERT, SET, OPTIMIZE, ...) is executed and reported as done.
func runSQL(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sql")
	resolve := chFlags(fs)
	format := fs.String("format", "table", "output format: table, csv or json")
	file := fs.String("file", "", "read the statement from this file (- for stdin) instead of the argument")
	// The statement is the one positional argument; flags may come before or after it.
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
	if err := checkFormat(fs, *format, "table", "csv", "json"); err != nil {
		return err
	}
	if *file != "" {
		if query != "" {
			return badUsage(fs, "give the statement either as an argument or with --file, not both")
		}
		data, err := readQueryFile(*file)
		if err != nil {
			return err
		}
		query = string(data)
	}
	query = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(query), ";"))
	if query == "" {
		return badUsage(fs, "no statement: fleetctl sql [flags] 'SELECT ...'")
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	c, err := open(ctx, cfg, logger(e))
	if err != nil {
		return err
	}
	defer c.Close()
	if !returnsRows(query) {
		if err := execSQL(ctx, c, query); err != nil {
			return err
		}
		// The table format reports on stdout, like its "(N rows)" line; csv
		// and json keep stdout for data.
		w := e.stdout
		if *format != "table" {
			w = e.stderr
		}
		fmt.Fprintln(w, "ok, 0 rows returned")
		return nil
	}
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

// rowKeywords start the statements that return a result set.
var rowKeywords = map[string]bool{"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXISTS": true, "EXPLAIN": true}

// returnsRows reports whether stmt is a query with a result set, from its
// first keyword.
func returnsRows(stmt string) bool {
	rest := skipNoise(stmt, "(")
	end := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(rest)
	}
	return rowKeywords[strings.ToUpper(rest[:end])]
}

// skipNoise returns stmt after its leading whitespace, -- and /* */
// comments, and any of the characters in also.
func skipNoise(stmt, also string) string {
	for {
		stmt = strings.TrimLeft(stmt, " \t\r\n"+also)
		switch {
		case strings.HasPrefix(stmt, "--"):
			i := strings.IndexByte(stmt, '\n')
			if i < 0 {
				return ""
			}
			stmt = stmt[i+1:]
		case strings.HasPrefix(stmt, "/*"):
			i := strings.Index(stmt, "*/")
			if i < 0 {
				return ""
			}
			stmt = stmt[i+2:]
		default:
			return stmt
		}
	}
}

// inlineInsert matches an INSERT whose data follows in the statement
// (VALUES or FORMAT) rather than coming from a SELECT.
var inlineInsert = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+(?:TABLE\s+)?(?:FUNCTION\s+)?[^\s(]+(?:\s*\([^)]*\))?\s*(?:VALUES|FORMAT)\b`)

// inlineInsertSince is the first ClickHouse release whose server reads an
// INSERT's inline data itself over the native protocol (pull request 4301,
// 19.3); older servers wait for the client to send the rows as blocks.
var inlineInsertSince = schema.Version{Major: 19, Minor: 3}

// execSQL runs a statement that returns no result set.
func execSQL(ctx context.Context, c *storage.Client, stmt string) error {
	if v := c.ServerVersion(); !v.AtLeast(inlineInsertSince.Major, inlineInsertSince.Minor) && inlineInsert.MatchString(skipNoise(stmt, "")) {
		return fmt.Errorf("ClickHouse %s reads INSERT ... VALUES/FORMAT data only from clients that send it as native blocks, which fleetctl sql does not; "+
			"use INSERT ... SELECT, or clickhouse-client", v)
	}
	if err := c.Conn().Exec(ctx, stmt); err != nil {
		return fmt.Errorf("statement failed: %w", err)
	}
	return nil
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
