package dashboards

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	fwdemo "github.com/fleetwatch/fleetwatch/internal/demo"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// demo is a database loaded with the simulated fleet of testdata/fleet.yaml,
// ending now, plus the analyzer's outputs for it (drift scores, control
// chart state, detections) written as the analyzer would.
type demo struct {
	c        *storage.Client
	sc       *sim.Scenario
	from, to time.Time
}

func loadDemo(t *testing.T) *demo {
	t.Helper()
	data, err := os.ReadFile("testdata/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC().Truncate(time.Minute)
	sc.Start = end.Add(-sc.Duration)
	c := chtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := fwdemo.Simulate(ctx, sc, c, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples == 0 || res.Events == 0 {
		t.Fatalf("nothing loaded: %+v", res)
	}
	for _, stmt := range analyzerOutputs {
		stmt = strings.ReplaceAll(stmt, "{end}", fmt.Sprintf("toDateTime(%d)", end.Unix()))
		if err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	return &demo{c: c, sc: sc, from: sc.Start, to: end}
}

// analyzerOutputs are what the analyzer would have written for the
// scenario's faults: PSI rising on fraud/amount into the action band,
// churn/amount in the investigate band, a stable column; two straggler
// windows for node-000's GPU 3; a drift and a thermal detection; and the
// control chart of fraud's p99 latency; a training job's health rows, the
// job stalled in its last windows; an open rack incident with two
// detections as evidence, and a straggler incident since resolved.
var analyzerOutputs = []string{
	`INSERT INTO drift_scores (ts, window_start, model, model_version, feature, kind, psi, p_value, q_value, method, band, n_ref, n_cur, missing_ref, missing_cur, flagged)
	SELECT {end} - (11 - number) * 300 AS t, t - 300, model, 'v1', feature, 'numeric', p,
	    if(p > 0.1, 1e-6, 0.4), if(p > 0.1, 1e-5, 0.6), 'chi2', multiIf(p < 0.1, 'stable', p < 0.25, 'investigate', 'action'),
	    5000, 3000, 0, 0.01, p >= 0.25
	FROM numbers(12)
	ARRAY JOIN ['fraud', 'fraud', 'churn'] AS model, ['amount', 'country', 'amount'] AS feature,
	    [0.02 + number * 0.035, 0.02, 0.03 + number * 0.011] AS p`,
	`INSERT INTO detections (ts, window_start, detector, class, severity, entity_type, entity, key, datacenter, row, rack, node, cluster, gpu_uuid, job, value, threshold, p_value, action, summary, evidence)
	SELECT {end} - number * 300, {end} - number * 300 - 300, 'straggler', 'straggler', 'warning', 'gpu', 'node-000/3', 'straggler/node-000/3',
	    'dc-0', 'row-0', 'rack-00', 'node-000', 'sim', 'GPU-node-000-3', 'llm-pretrain', 1.33 - number * 0.01, 1.15, nan, 'drain',
	    'node-000 GPU 3 steps 33% slower than its peers, no errors', '{"ratio":1.33}'
	FROM numbers(2)`,
	`INSERT INTO detections (ts, window_start, detector, class, severity, entity_type, entity, key, model, model_version, feature, value, threshold, p_value, action, summary, evidence)
	SELECT {end} - 60, {end} - 360, 'psi', 'covariate_drift', 'critical', 'feature', 'fraud/amount', 'psi/fraud/v1/amount', 'fraud', 'v1', 'amount',
	    0.4, 0.25, 1e-6, 'investigate', 'fraud amount drifted: PSI 0.40', '{"psi":0.4}'
	FROM system.one`,
	`INSERT INTO detections (ts, window_start, detector, class, severity, entity_type, entity, key, rack, value, threshold, p_value, action, summary, evidence)
	SELECT {end} - 120, {end} - 420, 'thermal', 'thermal', 'critical', 'rack', 'rack-01', 'thermal/rack-01', 'rack-01', 92, 85, nan, 'investigate',
	    'rack-01 running hot: cooling', '{}'
	FROM system.one`,
	`INSERT INTO incidents (key, version, updated_at, opened_at, status, level, scope, family, class, severity, team, oncall, title, evidence_count)
	SELECT key, version, {end} - 600 + version, {end} - 600, status, level, scope, family, class, severity, 'platform', 'platform-oncall', title, 2
	FROM system.one
	ARRAY JOIN ['thermal/rack/rack-01', 'straggler/gpu/node-000/3', 'straggler/gpu/node-000/3'] AS key, [1, 1, 2] AS version,
	    ['open', 'open', 'resolved'] AS status, ['rack', 'gpu', 'gpu'] AS level, ['dc-0/row-0/rack-01', 'node-000/3', 'node-000/3'] AS scope,
	    ['thermal', 'straggler', 'straggler'] AS family, ['thermal', 'straggler', 'straggler'] AS class,
	    ['critical', 'warning', 'warning'] AS severity, ['rack-01 cooling failure', 'node-000 GPU 3 straggler', 'node-000 GPU 3 straggler'] AS title`,
	`INSERT INTO incident_evidence (incident_key, detection_key, first_seen, last_seen, detector, class, severity, entity_type, entity, rack, value, summary)
	SELECT 'thermal/rack/rack-01', concat('thermal/', n), {end} - 600, {end} - 120, 'thermal', 'thermal', 'critical', 'node', n, 'rack-01', 90, concat(n, ' hot')
	FROM system.one ARRAY JOIN ['node-002', 'node-003'] AS n`,
	`INSERT INTO job_health (ts, window_start, detector, job, ranks, step_seconds, baseline_step_seconds, step_z, steps, goodput, stalled_ranks, stall_seconds, checkpoints, checkpoint_seconds, baseline_checkpoint_seconds, checkpoint_failures, flags)
	SELECT {end} - (11 - number) * 60 AS t, t - 60, 'training_jobs', 'llm-pretrain', 16, 1.2, 1.2, 0.3, if(number > 8, 0, 50),
	    if(number > 8, 0, 0.99), if(number > 8, 16, 0), if(number > 8, (number - 8) * 60, 2), 0, nan, 20, 0, if(number > 8, 4, 0)
	FROM numbers(12)`,
	`INSERT INTO spc_state (ts, detector, series, metric, class, entity_type, entity, value, rules, phase, mean, sigma)
	SELECT {end} - (11 - number) * 300, 'spc_models', 'model=fraud/latency_p99', 'latency_p99', 'latency',
	    'model', 'fraud', if(number > 8, 150, 60 + number % 3), if(number > 8, 1, 0), 1, 61, 1.5
	FROM numbers(12)`,
}

// variableValues resolves a dashboard's variables in order, each query
// expanded with the values before it. Every multi-value variable selects
// "All" (every value); a single-value one takes prefer when offered.
func variableValues(t *testing.T, c *storage.Client, d Dashboard, base Request, prefer string) Request {
	t.Helper()
	r := base
	r.Vars, r.Multi = map[string][]string{}, map[string]bool{}
	for _, v := range d.Templating.List {
		r.Multi[v.Name] = v.Multi
		if v.Type == "textbox" {
			r.Vars[v.Name] = []string{v.Query}
			continue
		}
		sql, err := ExpandSQL(v.Query, r)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		vals := queryStrings(t, c, sql)
		if len(vals) == 0 {
			t.Fatalf("variable %s has no values on the demo data:\n%s", v.Name, sql)
		}
		if !v.Multi {
			pick := vals[0]
			for _, s := range vals {
				if s == prefer {
					pick = s
				}
			}
			vals = []string{pick}
		}
		r.Vars[v.Name] = vals
	}
	return r
}

func queryStrings(t *testing.T, c *storage.Client, sql string) []string {
	t.Helper()
	rows, err := c.Conn().Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// result is what one query returned.
type result struct {
	columns, types []string
	rows           int
}

func run(c *storage.Client, sql string) (result, error) {
	var res result
	rows, err := c.Conn().Query(context.Background(), sql)
	if err != nil {
		return res, err
	}
	defer rows.Close()
	res.columns = rows.Columns()
	for _, ct := range rows.ColumnTypes() {
		res.types = append(res.types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		res.rows++
	}
	return res, rows.Err()
}

// panelInterval is the interval Grafana would give the panel: the range
// over ~1,000 points, at least the panel's minimum interval.
func panelInterval(t *testing.T, p Panel, from, to time.Time) time.Duration {
	t.Helper()
	iv := max(to.Sub(from)/1000, time.Second).Round(time.Second)
	if p.Interval != "" {
		minIv, err := time.ParseDuration(p.Interval)
		if err != nil {
			t.Fatalf("panel %s: interval %q: %v", p.Title, p.Interval, err)
		}
		iv = max(iv, minIv)
	}
	return iv
}

// TestOnDemoData loads the demo fleet once and checks, on it, every
// dashboard query and every on-call view.
func TestOnDemoData(t *testing.T) {
	d := loadDemo(t)
	t.Run("dashboards", func(t *testing.T) { checkDashboards(t, d) })
	t.Run("views", func(t *testing.T) { checkViews(t, d) })
	t.Run("runbook", func(t *testing.T) { checkRunbook(t, d) })
}

// checkRunbook runs every SQL block of docs/RUNBOOK.md on the demo data
// ('<key>' standing for the open incident's key): the runbook's queries
// must work as written.
func checkRunbook(t *testing.T, d *demo) {
	doc, err := os.ReadFile("../docs/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```sql\n")[1:]
	if len(blocks) < 8 {
		t.Fatalf("RUNBOOK.md has %d SQL blocks; expected one per step", len(blocks))
	}
	for _, b := range blocks {
		sql, _, _ := strings.Cut(b, "```")
		sql = strings.ReplaceAll(sql, "'<key>'", "'thermal/rack/rack-01'")
		if _, err := run(d.c, sql); err != nil {
			t.Errorf("%v\n%s", err, sql)
		}
	}
}

// checkDashboards runs every ClickHouse query of every dashboard file —
// variables, annotations, panels — over the demo's range, expanded as
// Grafana and the plugin expand them, and compares the result with the
// panel's expectation. Each query also runs over a 30-day range at a
// one-hour interval (long ranges must stay valid SQL on the rollups).
func checkDashboards(t *testing.T, d *demo) {
	expects := map[string]map[int]Expect{}
	for _, b := range boards() {
		expects[b.d.UID] = b.expects
	}
	for _, f := range loadFiles(t) {
		t.Run(f.d.UID, func(t *testing.T) {
			base := Request{From: d.from, To: d.to, Interval: time.Minute}
			r := variableValues(t, d.c, f.d, base, "fraud")
			for _, a := range f.d.Annotations.List {
				sql, err := ExpandSQL(a.Target.RawSQL, r)
				if err != nil {
					t.Fatalf("annotation %s: %v", a.Name, err)
				}
				res, err := run(d.c, sql)
				if err != nil {
					t.Fatalf("annotation %s: %v\n%s", a.Name, err, sql)
				}
				if strings.Join(res.columns, ",") != "time,text" || res.rows == 0 {
					t.Errorf("annotation %s: columns %v, %d rows; want time,text and rows", a.Name, res.columns, res.rows)
				}
			}
			for _, p := range f.d.Panels {
				for _, tg := range p.Targets {
					if tg.Datasource.Type != ClickHouseType {
						continue
					}
					checkPanelQuery(t, d, p, tg, r, expects[f.d.UID][p.ID])
				}
			}
		})
	}
}

func checkPanelQuery(t *testing.T, d *demo, p Panel, tg Target, r Request, want Expect) {
	t.Helper()
	r.Interval = panelInterval(t, p, r.From, r.To)
	sql, err := ExpandSQL(tg.RawSQL, r)
	if err != nil {
		t.Errorf("%s: %v", p.Title, err)
		return
	}
	res, err := run(d.c, sql)
	if err != nil {
		t.Errorf("%s: %v\n%s", p.Title, err, sql)
		return
	}
	if fmt.Sprint(res.columns) != fmt.Sprint(want.Columns) {
		t.Errorf("%s: columns %v, want %v", p.Title, res.columns, want.Columns)
	}
	if want.Rows && res.rows == 0 {
		t.Errorf("%s: no rows on the demo data\n%s", p.Title, sql)
	}
	if tg.Format != nil && *tg.Format == formatTimeSeries && (len(res.types) == 0 || !strings.HasPrefix(res.types[0], "DateTime")) {
		t.Errorf("%s: a time series query must return its time first, got %v", p.Title, res.types)
	}
	long := r
	long.From, long.Interval = r.To.Add(-30*24*time.Hour), time.Hour
	if sql, err = ExpandSQL(tg.RawSQL, long); err == nil {
		_, err = run(d.c, sql)
	}
	if err != nil {
		t.Errorf("%s over 30 days: %v", p.Title, err)
	}
}
