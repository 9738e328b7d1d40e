package schema_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

func render(tg schema.Target) string {
	var b strings.Builder
	for _, s := range schema.Bootstrap(tg) {
		b.WriteString(s + ";\n\n")
	}
	for _, m := range schema.Migrations() {
		for _, s := range m.Statements(tg) {
			b.WriteString(s + ";\n\n")
		}
	}
	return b.String()
}

func TestRenderGolden(t *testing.T) {
	cases := []struct {
		file string
		tg   schema.Target
	}{
		{"legacy.sql", schema.Target{Database: "fleetwatch"}},
		{"modern.sql", schema.Target{Database: "fleetwatch", Features: schema.Modern}},
		{"cluster_legacy.sql", schema.Target{Database: "fleetwatch", Cluster: "fleet"}},
		{"cluster_modern.sql", schema.Target{Database: "fleetwatch", Cluster: "fleet", Features: schema.Modern,
			RetentionDays: map[string]int{"gpu_samples": 7}}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			got := render(c.tg)
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("rendered DDL differs from %s; run go test ./storage/schema -update and review the diff", path)
			}
		})
	}
}

func TestDefinitionsAreConsistent(t *testing.T) {
	if err := schema.Check(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	prev := 0
	for _, m := range schema.Migrations() {
		if seen[m.Version] || m.Version <= prev {
			t.Errorf("migration %d (%s) is out of order or duplicated", m.Version, m.Name)
		}
		seen[m.Version] = true
		prev = m.Version
	}
}

func TestLegacyRenderHasNoModernExtras(t *testing.T) {
	sql := render(schema.Target{Database: "fleetwatch"})
	for _, word := range []string{"LowCardinality", "CODEC", "TTL", "INDEX ", "ON CLUSTER", "Replicated"} {
		if strings.Contains(sql, word) {
			t.Errorf("legacy DDL contains %q", word)
		}
	}
	modern := render(schema.Target{Database: "fleetwatch", Features: schema.Modern})
	for _, word := range []string{"LowCardinality(String)", "CODEC(DoubleDelta, ZSTD(1))", "TTL ts + toIntervalDay(14)", "INDEX trace_idx"} {
		if !strings.Contains(modern, word) {
			t.Errorf("modern DDL lacks %q", word)
		}
	}
}

func TestClusterRenderPairsLocalAndDistributed(t *testing.T) {
	tg := schema.Target{Database: "fw", Cluster: "c1"}
	for _, tbl := range schema.Tables() {
		stmts := schema.CreateTable{Table: tbl}.Statements(tg)
		if len(stmts) != 2 {
			t.Fatalf("%s: %d statements, want local + distributed", tbl.Name, len(stmts))
		}
		if !strings.Contains(stmts[0], "fw."+tbl.Name+"_local ON CLUSTER c1") || !strings.Contains(stmts[0], "ENGINE = Replicated") {
			t.Errorf("%s: local table DDL wrong:\n%s", tbl.Name, stmts[0])
		}
		if !strings.Contains(stmts[1], "Distributed(c1, fw, "+tbl.Name+"_local") {
			t.Errorf("%s: distributed DDL wrong:\n%s", tbl.Name, stmts[1])
		}
	}
}

func TestTargetValidate(t *testing.T) {
	cases := []struct {
		name string
		tg   schema.Target
		want string
	}{
		{"ok", schema.Target{Database: "fleetwatch", RetentionDays: map[string]int{"spans": 3}}, ""},
		{"bad db", schema.Target{Database: "fleet-watch"}, "database name"},
		{"digit db", schema.Target{Database: "1fleet"}, "database name"},
		{"bad cluster", schema.Target{Database: "x", Cluster: "a b"}, "cluster name"},
		{"unknown table", schema.Target{Database: "x", RetentionDays: map[string]int{"nope": 3}}, "unknown table"},
		{"negative", schema.Target{Database: "x", RetentionDays: map[string]int{"spans": -1}}, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.tg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in      string
		want    schema.Version
		modern  bool
		wantErr bool
	}{
		{"18.16.1", schema.Version{18, 16, 1}, false, false},
		{"20.3.1.1", schema.Version{20, 3, 1}, true, false},
		{"19.17.4.11", schema.Version{19, 17, 4}, false, false},
		{"26.5.1.1-stable", schema.Version{26, 5, 1}, true, false},
		{"24.8", schema.Version{24, 8, 0}, true, false},
		{"x.y", schema.Version{}, false, true},
		{"18", schema.Version{}, false, true},
		{"", schema.Version{}, false, true},
	}
	for _, c := range cases {
		got, err := schema.ParseVersion(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseVersion(%q) error = %v", c.in, err)
			continue
		}
		if c.wantErr {
			continue
		}
		if got != c.want {
			t.Errorf("ParseVersion(%q) = %v, want %v", c.in, got, c.want)
		}
		if m := schema.FeaturesFor(got) == schema.Modern; m != c.modern {
			t.Errorf("FeaturesFor(%v) modern = %v, want %v", got, m, c.modern)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"18.16.1", "26.5.1.1-stable", "", "1..2", "99999999999999999999.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := schema.ParseVersion(s)
		if err == nil && (v.Major < 0 || v.Minor < 0 || v.Patch < 0) {
			t.Fatalf("negative version %v from %q", v, s)
		}
	})
}

const (
	beginGenerated = "<!-- BEGIN GENERATED: go test ./storage/schema -update -->\n"
	endGenerated   = "<!-- END GENERATED -->"
)

// docs/SCHEMA.md carries a column reference generated from the definitions;
// it must match them.
func TestSchemaDocIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "SCHEMA.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, beginGenerated), strings.Index(s, endGenerated)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", path)
	}
	want := s[:i+len(beginGenerated)] + schema.Markdown() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Errorf("%s is out of date with the table definitions; run go test ./storage/schema -update", path)
	}
}
