package dashboards

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chdb"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Every ClickHouse query of every dashboard also runs on current
// ClickHouse (in-process chDB, modern schema profile) and returns the
// expected columns there. The tables are empty: this checks the SQL, the
// demo test checks the answers.
func TestQueriesOnCurrentClickHouse(t *testing.T) {
	s := chdb.OpenTest(t)
	tg := schema.Target{Database: "fleetwatch", Features: schema.Modern}
	stmts := schema.Bootstrap(tg)
	for _, m := range schema.Migrations() {
		stmts = append(stmts, m.Statements(tg)...)
	}
	for _, stmt := range append(stmts, "USE fleetwatch") {
		if _, err := s.Query(stmt, "CSV"); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	expects := map[string]map[int]Expect{}
	for _, b := range boards() {
		expects[b.d.UID] = b.expects
	}
	to := time.Now().UTC().Truncate(time.Minute)
	for _, f := range loadFiles(t) {
		r := Request{From: to.Add(-6 * time.Hour), To: to, Interval: time.Minute, Vars: map[string][]string{}, Multi: map[string]bool{}}
		for _, v := range f.d.Templating.List {
			r.Vars[v.Name], r.Multi[v.Name] = []string{"a", "b"}, v.Multi
			if !v.Multi {
				r.Vars[v.Name] = []string{"a"}
			}
		}
		check := func(what, raw string, want []string) {
			t.Helper()
			sql, err := ExpandSQL(raw, r)
			if err == nil {
				var out string
				if out, err = s.Query(sql, "TabSeparatedWithNames"); err == nil && want != nil {
					if header, _, _ := strings.Cut(out, "\n"); header != strings.Join(want, "\t") {
						t.Errorf("%s / %s: columns %q, want %v", f.name, what, header, want)
					}
				}
			}
			if err != nil {
				t.Errorf("%s / %s: %v", f.name, what, err)
			}
		}
		for _, v := range f.d.Templating.List {
			if v.Type == "query" {
				check("variable "+v.Name, v.Query, nil)
			}
		}
		for _, a := range f.d.Annotations.List {
			check("annotation "+a.Name, a.Target.RawSQL, []string{"time", "text"})
		}
		for _, p := range f.d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type == ClickHouseType {
					check(p.Title, tg.RawSQL, expects[f.d.UID][p.ID].Columns)
				}
			}
		}
	}
}
