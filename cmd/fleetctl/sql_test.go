package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestSQLUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no query", []string{"sql", "--dsn", "clickhouse://127.0.0.1:1/x"}, 2, "no statement"},
		{"bad format", []string{"sql", "--format", "xml", "SELECT 1"}, 2, `--format "xml"`},
		{"two queries", []string{"sql", "SELECT 1", "SELECT 2"}, 2, "unexpected arguments"},
		{"query and file", []string{"sql", "--file", "q.sql", "SELECT 1"}, 2, "not both"},
		{"missing file", []string{"sql", "--file", filepath.Join(t.TempDir(), "nope.sql")}, 1, "read query"},
		{"no server", []string{"sql", "--dsn", "clickhouse://127.0.0.1:1/fleetwatch?dial_timeout=200ms", "SELECT 1"}, 1, "is ClickHouse running at 127.0.0.1:1?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := fleetctl(t, c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, c.code, c.want)
			}
		})
	}
}

func TestSQLAgainstClickHouse(t *testing.T) {
	c := chtest.NewDB(t)
	dsn := "clickhouse://" + c.Config().Addrs[0] + "/" + c.Config().Database
	if err := c.Exec(context.Background(), `INSERT INTO detections (ts, detector, class, severity, entity_type, entity, key, value, summary)
		SELECT toDateTime('2026-11-20 10:00:00') + number, 'straggler', 'straggler', 'warning', 'gpu', concat('gpu-', toString(number)),
		    concat('k', toString(number)), number / 2, if(number = 0, 'slow, "very"', 'tab	here')
		FROM numbers(2)`); err != nil {
		t.Fatal(err)
	}
	query := "SELECT ts, entity, value, summary, [1, 2] AS arr, nan AS missing FROM detections ORDER BY ts"

	code, out, errOut := fleetctl(t, "sql", "--dsn", dsn, query)
	if code != 0 {
		t.Fatalf("table: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ts ") || !strings.Contains(lines[2], "2026-11-20 10:00:00  gpu-0") ||
		!strings.Contains(lines[3], "tab here") || !strings.Contains(lines[2], "[1,2]") || lines[4] != "(2 rows)" {
		t.Fatalf("table output:\n%s", out)
	}
	// Columns line up: every row starts its second column where the header does.
	col := strings.Index(lines[0], "entity")
	for _, l := range lines[1:4] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("column 2 not aligned at %d in %q", col, l)
		}
	}

	code, out, errOut = fleetctl(t, "sql", "--dsn", dsn, "--format", "csv", query)
	if code != 0 || !strings.HasPrefix(out, "ts,entity,value,summary,arr,missing\n2026-11-20 10:00:00,gpu-0,0,\"slow, \"\"very\"\"\",\"[1,2]\",NaN\n") {
		t.Fatalf("csv: exit %d %s\n%s", code, errOut, out)
	}

	path := filepath.Join(t.TempDir(), "q.sql")
	if err := os.WriteFile(path, []byte(query+";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = fleetctl(t, "sql", "--file", path, "--dsn", dsn, "--format", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if first["ts"] != "2026-11-20T10:00:00Z" || first["entity"] != "gpu-0" || first["value"] != 0.0 || first["missing"] != "NaN" {
		t.Errorf("json row: %v", first)
	}
	if !strings.HasPrefix(out, `{"ts":`) {
		t.Errorf("json keys are not in column order: %s", out)
	}

	code, _, errOut = fleetctl(t, "sql", "--dsn", dsn, "SELECT nope FROM detections")
	if code != 1 || !strings.Contains(errOut, "query failed") || !strings.Contains(errOut, "nope") {
		t.Fatalf("bad query: exit %d %q", code, errOut)
	}

	// The on-call views are there to be queried.
	code, out, errOut = fleetctl(t, "sql", "--dsn", dsn, "SELECT key, windows FROM oncall_stragglers_24h")
	if code != 0 || !strings.Contains(out, "(0 rows)") {
		t.Fatalf("view: exit %d %s\n%s", code, errOut, out)
	}
	_ = storage.DSNEnv
}

// Statements without a result set (DDL, INSERT ... SELECT, SET, ALTER)
// run and say so, in every format; a query with no rows still prints its
// header. INSERT with inline data on a server that cannot read it is
// refused at once with the reason, not left waiting.
func TestSQLStatementsWithoutRows(t *testing.T) {
	c := chtest.NewDB(t)
	db := c.Config().Database
	dsn := "clickhouse://" + c.Config().Addrs[0] + "/" + db
	type sqlCase struct {
		name, stmt, format string
		code               int
		stdout, stderr     string
	}
	cases := []sqlCase{
		{"create table", "CREATE TABLE scratch (x UInt8) ENGINE = MergeTree ORDER BY x", "table", 0, "ok, 0 rows returned\n", ""},
		{"insert select", "-- fill it\nINSERT INTO scratch SELECT number FROM numbers(7);", "table", 0, "ok, 0 rows returned\n", ""},
		{"set", "SET max_threads = 1", "csv", 0, "", "ok, 0 rows returned"},
		{"alter", "ALTER TABLE scratch DELETE WHERE x > 100", "json", 0, "", "ok, 0 rows returned"},
		{"empty select", "/* nothing */ (SELECT x FROM scratch WHERE x > 100)", "table", 0, "x\n-\n(0 rows)\n", ""},
		{"the rows are there", "SELECT count() AS n FROM scratch", "csv", 0, "n\n7\n", ""},
		{"bad ddl", "CREATE TABLE scratch (x UInt8) ENGINE = MergeTree ORDER BY x", "table", 1, "", "statement failed"},
	}
	if !c.ServerVersion().AtLeast(inlineInsertSince.Major, inlineInsertSince.Minor) {
		cases = append(cases, sqlCase{"inline insert on an old server", "INSERT INTO scratch (x) VALUES (9)", "table", 1, "", "use INSERT ... SELECT, or clickhouse-client"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := fleetctl(t, "sql", "--dsn", dsn, "--format", tc.format, "--", tc.stmt)
			if code != tc.code || out != tc.stdout || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	var n uint64
	if err := c.QueryScalar(context.Background(), "SELECT count() FROM "+db+".scratch", &n); err != nil || n != 7 {
		t.Fatalf("scratch holds %d rows (%v), want 7", n, err)
	}
}

func TestReturnsRows(t *testing.T) {
	for stmt, want := range map[string]bool{
		"SELECT 1": true, "  with x AS (SELECT 1) SELECT * FROM x": true, "((SELECT 1))": true, "-- c\n/* d */ show tables": true,
		"DESC t": true, "describe table t": true, "EXISTS TABLE t": true, "EXPLAIN SELECT 1": true,
		"CREATE TABLE t (x UInt8) ENGINE = Memory": false, "INSERT INTO t SELECT 1": false, "SET a = 1": false,
		"OPTIMIZE TABLE t": false, "-- only a comment": false, "SELECTION": false,
	} {
		if got := returnsRows(stmt); got != want {
			t.Errorf("returnsRows(%q) = %v", stmt, got)
		}
	}
	for stmt, want := range map[string]bool{
		"INSERT INTO t VALUES (1)": true, "insert into db.t (a, b) values (1, 2)": true, "INSERT INTO t FORMAT CSV\n1": true,
		"INSERT INTO FUNCTION null('x UInt64') VALUES (1)": true, "INSERT INTO t SELECT * FROM u WHERE s = 'VALUES'": false,
		"INSERT INTO t (a) SELECT 1": false,
	} {
		if got := inlineInsert.MatchString(stmt); got != want {
			t.Errorf("inlineInsert(%q) = %v", stmt, got)
		}
	}
}
