package dashboards

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// The name from the report: with Grafana's :singlequote it closes the
// string literal (ClickHouse reads the value's backslash as an escape of
// the quote Grafana added) and lists every database.
const injection = `\') UNION ALL SELECT name FROM system.databases -- `

// Names that try every way out of a ClickHouse string literal, and the
// characters percent-encoding must carry through unchanged.
var hostileNames = []string{injection, `x\`, `o'b`, `a"b`, "tab\there", "ünïcode", "back`tick"}

// Hostile names stay values: a filter on a variable holding them matches
// exactly their rows on a real server, where the :singlequote expansion
// the dashboards used before leaks the list of databases; and every query
// of every shipped dashboard runs without error with every variable set
// to them.
func TestHostileNamesStayValues(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Minute)
	for _, m := range append([]string{"fraud"}, hostileNames...) {
		err := c.Exec(ctx, `INSERT INTO drift_scores (ts, window_start, model, model_version, feature, kind, psi, p_value, q_value, method, band, n_ref, n_cur, missing_ref, missing_cur, flagged)
			SELECT `+chsql.Time(end)+`, `+chsql.Time(end.Add(-5*time.Minute))+`, `+chsql.String(m)+`, 'v1', `+chsql.String(m)+`, 'numeric', 0.3, 0.001, 0.01, 'chi2', 'action', 100, 100, 0, 0, 1`)
		if err != nil {
			t.Fatal(err)
		}
	}
	base := Request{From: end.Add(-time.Hour), To: end.Add(time.Minute), Interval: time.Minute,
		Vars: map[string][]string{"model": {injection}}, Multi: map[string]bool{"model": true}}

	// The filter the dashboards use matches the hostile model's one row.
	sql, err := ExpandSQL("SELECT model FROM drift_scores WHERE "+modelFilter+" AND $__timeFilter(ts)", base)
	if err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, c, sql); !slices.Equal(got, []string{injection}) {
		t.Fatalf("the model filter returned %q, want the one row of the hostile model\n%s", got, sql)
	}
	// Every hostile name at once, as a multi-value selection.
	base.Vars["model"] = hostileNames
	if sql, err = ExpandSQL("SELECT model FROM drift_scores WHERE "+modelFilter+" ORDER BY model", base); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, c, sql)
	want := slices.Sorted(slices.Values(hostileNames))
	if !slices.Equal(got, want) {
		t.Fatalf("the model filter returned %q, want %q\n%s", got, want, sql)
	}
	// What the dashboards did before: the same filter with :singlequote.
	base.Vars["model"] = []string{injection}
	if sql, err = ExpandSQL("SELECT model FROM drift_scores WHERE model IN (${model:singlequote})", base); err != nil {
		t.Fatal(err)
	}
	if leaked := queryStrings(t, c, sql); !slices.Contains(leaked, "system") {
		t.Fatalf(":singlequote no longer leaks (%q): is the server's escaping different?\n%s", leaked, sql)
	}

	// Every shipped query, every variable set to the hostile names.
	for _, f := range loadFiles(t) {
		r := base
		r.Vars, r.Multi = map[string][]string{}, map[string]bool{}
		for _, v := range f.d.Templating.List {
			r.Multi[v.Name] = v.Multi
			r.Vars[v.Name] = hostileNames
			if !v.Multi {
				r.Vars[v.Name] = []string{injection}
			}
		}
		queries := map[string]string{}
		for _, v := range f.d.Templating.List {
			if v.Type != "textbox" {
				queries["variable "+v.Name] = v.Query
			}
		}
		for _, a := range f.d.Annotations.List {
			queries["annotation "+a.Name] = a.Target.RawSQL
		}
		for _, p := range f.d.Panels {
			for i, tg := range p.Targets {
				if tg.Datasource.Type == ClickHouseType {
					queries["panel "+p.Title+" #"+string(rune('A'+i))] = tg.RawSQL
				}
			}
		}
		for what, q := range queries {
			if q == "" {
				continue
			}
			sql, err := ExpandSQL(q, r)
			if err != nil {
				t.Errorf("%s / %s: %v", f.name, what, err)
				continue
			}
			if _, err := run(c, sql); err != nil {
				t.Errorf("%s / %s with hostile names: %v\n%s", f.name, what, err, sql)
			}
			if strings.Contains(q, ":singlequote") || strings.Contains(q, ":sqlstring") {
				t.Errorf("%s / %s quotes a variable with a Grafana format that leaves backslashes as they are", f.name, what)
			}
		}
	}
}
