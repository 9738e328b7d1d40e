package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden runs fleetctl with args and compares exit code, stdout and stderr
// with testdata/golden/<name>.golden.
func golden(t *testing.T, name string, args ...string) string {
	t.Helper()
	code, out, errOut := fleetctl(t, args...)
	got := fmt.Sprintf("$ fleetctl %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), code, out, errOut)
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/fleetctl -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("fleetctl %s differs from %s (go test ./cmd/fleetctl -update rewrites it):\n%s", strings.Join(args, " "), path, got)
	}
	return out
}

func TestDriftGolden(t *testing.T) {
	ref, cur := "testdata/drift/ref.csv", "testdata/drift/cur.csv"
	golden(t, "drift_table", "drift", "--reference", ref, "--current", cur)
	out := golden(t, "drift_json", "drift", "--reference", ref, "--current", cur, "--bins", "5", "--format", "json")
	var rep struct {
		Columns []struct {
			Column string  `json:"column"`
			PSI    float64 `json:"psi"`
			Drift  bool    `json:"drift"`
			Bins   []struct {
				Ref float64 `json:"ref"`
			} `json:"bins"`
		} `json:"columns"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--format json is not JSON: %v", err)
	}
	drifted := map[string]bool{}
	for _, c := range rep.Columns {
		drifted[c.Column] = c.Drift
		total := 0.0
		for _, b := range c.Bins {
			total += b.Ref
		}
		if total < 0.999 || total > 1.001 {
			t.Errorf("%s: reference shares sum to %v", c.Column, total)
		}
	}
	// The fixture shifts amount, adds a country and more missing scores; age is unchanged.
	if !drifted["amount"] || !drifted["country"] || drifted["age"] {
		t.Errorf("drift flags %v", drifted)
	}
	// A table against itself: no drift anywhere, PSI exactly 0.
	out = golden(t, "drift_identical", "drift", "--reference", ref, "--current", ref, "--format", "json")
	if strings.Contains(out, `"drift": true`) || strings.Count(out, `"psi": 0,`) != 5 {
		t.Errorf("identical tables:\n%s", out)
	}
}

func TestDriftErrorsGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"drift_err_missing_flag", []string{"drift", "--reference", "testdata/drift/ref.csv"}},
		{"drift_err_no_file", []string{"drift", "--reference", "testdata/drift/nope.csv", "--current", "testdata/drift/cur.csv"}},
		{"drift_err_ragged", []string{"drift", "--reference", "testdata/drift/ragged.csv", "--current", "testdata/drift/cur.csv"}},
		{"drift_err_empty", []string{"drift", "--reference", "testdata/drift/ref.csv", "--current", "testdata/drift/empty.csv"}},
		{"drift_err_duplicate", []string{"drift", "--reference", "testdata/drift/duplicate.csv", "--current", "testdata/drift/cur.csv"}},
		{"drift_err_quote", []string{"drift", "--reference", "testdata/drift/quote.csv", "--current", "testdata/drift/cur.csv"}},
		{"drift_err_bins", []string{"drift", "--reference", "testdata/drift/ref.csv", "--current", "testdata/drift/cur.csv", "--bins", "1"}},
		{"drift_err_format", []string{"drift", "--reference", "testdata/drift/ref.csv", "--current", "testdata/drift/cur.csv", "--format", "xml"}},
		{"drift_err_parquet", []string{"drift", "--reference", "testdata/drift/ref.parquet", "--current", "testdata/drift/cur.csv"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name, c.args...)
			if code, _, _ := fleetctl(t, c.args...); code == 0 {
				t.Error("exit 0 for bad input")
			}
		})
	}
}

func TestSPCGolden(t *testing.T) {
	out := golden(t, "spc_table", "spc", "--input", "testdata/spc/latency.csv", "--column", "latency_ms")
	// The fixture has a spike at row 33 and a level shift from row 48; with
	// the shipped defaults (30-point baseline) nothing before them fires.
	for _, want := range []string{"\n  33   190    6.75  we1\n", "1 missing", "UCL ", "prediction limits of a 30-point baseline"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "\n  12  ") {
		t.Error("the missing row 12 was reported as a violation")
	}
	out = golden(t, "spc_json", "spc", "--input", "testdata/spc/latency.csv", "--column", "latency_ms", "--format", "json", "--rules", "we1,we2,we4")
	var rep struct {
		Violations []struct {
			Row   int      `json:"row"`
			Rules []string `json:"rules"`
		} `json:"violations"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	rows := map[int]bool{}
	for _, v := range rep.Violations {
		rows[v.Row] = true
		for _, r := range v.Rules {
			if r != "we1" && r != "we2" && r != "we4" {
				t.Errorf("rule %s was not asked for", r)
			}
		}
	}
	if !rows[33] || !rows[49] {
		t.Errorf("violations at %v; want the spike (33) and the shift (49)", rows)
	}
	golden(t, "spc_retrospective", "spc", "--input", "testdata/spc/latency.csv", "--column", "error_rate", "--baseline", "0")
}

func TestSPCErrorsGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"spc_err_no_input", []string{"spc"}},
		{"spc_err_ambiguous", []string{"spc", "--input", "testdata/spc/latency.csv"}},
		{"spc_err_text_column", []string{"spc", "--input", "testdata/spc/latency.csv", "--column", "region"}},
		{"spc_err_unknown_column", []string{"spc", "--input", "testdata/spc/latency.csv", "--column", "p99"}},
		{"spc_err_short", []string{"spc", "--input", "testdata/spc/short.csv"}},
		{"spc_err_rules", []string{"spc", "--input", "testdata/spc/short.csv", "--rules", "we1,we8"}},
		{"spc_err_baseline", []string{"spc", "--input", "testdata/spc/latency.csv", "--column", "latency_ms", "--baseline", "2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name, c.args...)
			if code, _, _ := fleetctl(t, c.args...); code == 0 {
				t.Error("exit 0 for bad input")
			}
		})
	}
}
