package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
)

var update = flag.Bool("update", false, "rewrite json/*.json from the definitions")

// The committed JSON files are exactly what the definitions render.
func TestFilesAreCurrent(t *testing.T) {
	want, err := Rendered()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		old, _ := filepath.Glob(filepath.Join("json", "*.json"))
		for _, f := range old {
			if _, keep := want[filepath.Base(f)]; !keep {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join("json", name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := loadFiles(t)
	if len(files) != len(want) {
		t.Errorf("json/ has %d dashboards, the definitions %d; run go test ./dashboards -run TestFilesAreCurrent -update", len(files), len(want))
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join("json", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("json/%s differs from its definition; run go test ./dashboards -run TestFilesAreCurrent -update", name)
		}
	}
}

// dashboardFile is a dashboard JSON file as Grafana reads it.
type dashboardFile struct {
	name string
	raw  map[string]any
	d    Dashboard
}

// loadFiles parses every file under json/ (the embedded copy, which is
// what ships) both loosely and into the model.
func loadFiles(t *testing.T) []dashboardFile {
	t.Helper()
	names, err := fs.Glob(Files, "json/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []dashboardFile
	for _, n := range names {
		data, err := fs.ReadFile(Files, n)
		if err != nil {
			t.Fatal(err)
		}
		f := dashboardFile{name: path.Base(n)}
		if err := json.Unmarshal(data, &f.raw); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f.d); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		t.Fatal("no dashboards under json/")
	}
	return out
}

// provisioned reads the data sources provisioning file: uid -> type.
func provisioned(t *testing.T) map[string]string {
	t.Helper()
	data, err := fs.ReadFile(Files, "provisioning/datasources/fleetwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type string
			JSONData        map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != 1 {
		t.Errorf("datasources apiVersion %d, want 1", doc.APIVersion)
	}
	out := map[string]string{}
	for _, d := range doc.Datasources {
		out[d.UID] = d.Type
		if d.Type == ClickHouseType && d.JSONData["defaultDatabase"] != "fleetwatch" {
			t.Errorf("ClickHouse data source: jsonData.defaultDatabase must be fleetwatch (queries name tables without a database)")
		}
	}
	return out
}

func TestDashboardProvisioning(t *testing.T) {
	data, err := fs.ReadFile(Files, "provisioning/dashboards/fleetwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != 1 || len(doc.Providers) != 1 || doc.Providers[0].Type != "file" || doc.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provider: %+v", doc)
	}
}

var (
	// sqlVarUse finds template variable references in a query.
	sqlVarUse = regexp.MustCompile(`\$\{(\w+)(?::[^}]+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)`)
)

// Structure: unique uids, panel ids and titles; panels inside the grid and
// not overlapping; every data source reference provisioned with the right
// type; every variable used defined; every query non-empty; PromQL parses.
func TestStructure(t *testing.T) {
	sources := provisioned(t)
	uids := map[string]bool{}
	for _, f := range loadFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			d := f.d
			if uids[d.UID] || d.UID == "" || d.UID+".json" != f.name {
				t.Errorf("uid %q: empty, duplicate or not the file name", d.UID)
			}
			uids[d.UID] = true
			if d.SchemaVersion != SchemaVersion || d.Title == "" || d.Description == "" {
				t.Errorf("schemaVersion %d, title %q, description %q", d.SchemaVersion, d.Title, d.Description)
			}
			for _, key := range []string{"panels", "templating", "annotations", "time", "uid", "title", "schemaVersion"} {
				if _, ok := f.raw[key]; !ok {
					t.Errorf("missing top-level %q", key)
				}
			}
			checkRef := func(where string, r Ref) {
				t.Helper()
				if typ, ok := sources[r.UID]; !ok || typ != r.Type {
					t.Errorf("%s: data source %+v is not provisioned (have %v)", where, r, sources)
				}
			}
			defined := map[string]bool{}
			for _, v := range d.Templating.List {
				if defined[v.Name] {
					t.Errorf("variable %s defined twice", v.Name)
				}
				defined[v.Name] = true
				if v.Datasource != nil {
					checkRef("variable "+v.Name, *v.Datasource)
				}
			}
			used := func(where, q string) {
				t.Helper()
				for _, m := range sqlVarUse.FindAllStringSubmatch(q, -1) {
					name := m[1] + m[2] + m[3]
					if !strings.HasPrefix(name, "__") && !defined[name] {
						t.Errorf("%s uses $%s, which the dashboard does not define", where, name)
					}
				}
			}
			for i, v := range d.Templating.List {
				used("variable "+v.Name, v.Query)
				// A variable may only depend on variables before it.
				for _, m := range sqlVarUse.FindAllStringSubmatch(v.Query, -1) {
					name := m[1] + m[2] + m[3]
					if dep := slices.IndexFunc(d.Templating.List, func(o Variable) bool { return o.Name == name }); dep >= i {
						t.Errorf("variable %s depends on %s, defined after it", v.Name, name)
					}
				}
			}
			for _, a := range d.Annotations.List {
				checkRef("annotation "+a.Name, a.Datasource)
				if a.Target == nil || a.Target.RawSQL == "" {
					t.Errorf("annotation %s has no query", a.Name)
					continue
				}
				used("annotation "+a.Name, a.Target.RawSQL)
			}
			ids, titles := map[int]bool{}, map[string]bool{}
			var cells [][24]bool
			for _, p := range d.Panels {
				where := "panel " + p.Title
				if ids[p.ID] || p.ID <= 0 || titles[p.Title] || p.Title == "" {
					t.Errorf("%s: id %d or title duplicated or empty", where, p.ID)
				}
				ids[p.ID], titles[p.Title] = true, true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
					t.Errorf("%s: gridPos %+v outside the grid", where, g)
				}
				for y := g.Y; y < g.Y+g.H; y++ {
					for len(cells) <= y {
						cells = append(cells, [24]bool{})
					}
					for x := g.X; x < min(g.X+g.W, 24); x++ {
						if cells[y][x] {
							t.Errorf("%s overlaps another panel at (%d,%d)", where, x, y)
						}
						cells[y][x] = true
					}
				}
				checkRef(where, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("%s has no query", where)
				}
				for _, tg := range p.Targets {
					checkRef(where+" target", tg.Datasource)
					switch tg.Datasource.Type {
					case ClickHouseType:
						if tg.RawSQL == "" || tg.EditorType != "sql" || tg.Format == nil || tg.QueryType == "" {
							t.Errorf("%s: ClickHouse target needs rawSql, editorType sql, format and queryType", where)
						}
						used(where, tg.RawSQL)
					case PrometheusType:
						if tg.Expr == "" {
							t.Errorf("%s: Prometheus target without expr", where)
						}
						used(where, tg.Expr)
					}
				}
			}
		})
	}
}

// Every Prometheus expression, expanded the way Grafana expands it, is
// accepted by a real Prometheus.
func TestPromQLRunsOnPrometheus(t *testing.T) {
	prom := promtest.Prometheus(t, time.Minute)
	for _, f := range loadFiles(t) {
		r := Request{From: time.Unix(0, 0), To: time.Unix(3600, 0), Interval: time.Minute, Vars: map[string][]string{}}
		for _, v := range f.d.Templating.List {
			r.Vars[v.Name] = []string{"node-1.example", "node-2"}
		}
		for _, p := range f.d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != PrometheusType {
					continue
				}
				q, err := ExpandVariables(tg.Expr, r, "promql")
				if err != nil {
					t.Errorf("%s / %s: %v", f.name, p.Title, err)
					continue
				}
				if _, err := prom.Query(context.Background(), q); err != nil {
					t.Errorf("%s / %s: %v", f.name, p.Title, err)
				}
			}
		}
	}
}

// Every ClickHouse panel declares what its query returns, and nothing else does.
func TestEveryClickHousePanelHasExpectations(t *testing.T) {
	for _, b := range boards() {
		for _, p := range b.d.Panels {
			e, ok := b.expects[p.ID]
			if (p.Datasource.Type == ClickHouseType) != ok || (ok && len(e.Columns) == 0) {
				t.Errorf("%s / %s: expectation %v present=%v", b.d.UID, p.Title, e, ok)
			}
		}
	}
}
