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
		{"no query", []string{"sql", "--dsn", "clickhouse://127.0.0.1:1/x"}, 2, "no query"},
		{"bad format", []string{"sql", "--format", "xml", "SELECT 1"}, 2, `--format "xml"`},
		{"two queries", []string{"sql", "SELECT 1", "SELECT 2"}, 2, "unexpected arguments"},
		{"query and file", []string{"sql", "--file", "q.sql", "SELECT 1"}, 2, "not both"},
		{"missing file", []string{"sql", "--file", filepath.Join(t.TempDir(), "nope.sql")}, 1, "read query"},
		{"no server", []string{"sql", "--dsn", "clickhouse://127.0.0.1:1/fleetwatch?dial_timeout=200ms", "SELECT 1"}, 1, "is ClickHouse running?"},
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
