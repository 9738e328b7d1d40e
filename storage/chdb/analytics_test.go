package chdb_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chdb"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// analyticsMigration is the last migration the analyzer's SQL needs (6:
// the analyzer's tables).
const analyticsMigration = 6

// driftBinsMigration creates drift_bins, the ingest-time drift counts.
const driftBinsMigration = 10

// featureUpdateMigration adds the feature update times to inference_events.
const featureUpdateMigration = 13

// detectionSourceMigration adds the evaluation that raised each detection.
const detectionSourceMigration = 15

// The SQL the analyzer ships (package drift, spc and engine builders, the
// very text the detectors run on ClickHouse 18.16 in their tests) runs on
// current ClickHouse and gives the same answers.
func TestAnalyzerSQLOnCurrentClickHouse(t *testing.T) {
	s := session(t)
	tg := schema.Target{Database: "fleetwatch", Features: schema.Modern}
	for _, stmt := range schema.Bootstrap(tg) {
		mustQuery(t, s, stmt)
	}
	for _, m := range schema.Migrations() {
		if m.Version > analyticsMigration {
			continue // later issues' migrations are tested by their own tests
		}
		for _, stmt := range m.Statements(tg) {
			mustQuery(t, s, stmt)
		}
	}
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	at := func(sec int) string { return fmt.Sprintf("toDateTime(%d)", t0.Unix()+int64(sec)) }
	// 1,000 events over 1,000 seconds: a = n % 10; b = n/100 with NaN every
	// 9th; c cycles x, y, z with "" every 11th; outputs alternate.
	mustQuery(t, s, `INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status,
		feature_names, feature_values, cat_feature_names, cat_feature_values, prediction, prediction_class, sample_rate, gpu_uuid)
		SELECT `+at(0)+` + number, 'm', 'v1', toString(number), 10 + number % 7, if(number % 50 = 0, 'error', 'ok'),
		['a', 'b'], [toFloat64(number % 10), if(number % 9 = 0, nan, number / 100)],
		['c'], [if(number % 11 = 0, '', ['x', 'y', 'z'][number % 3 + 1])],
		number % 2, if(number % 2 = 1, 'pos', 'neg'), 0.5, 'gpu-1' FROM numbers(1000)`)
	mustQuery(t, s, `INSERT INTO fleetwatch.delayed_labels (ts, model, request_id, label, label_value)
		SELECT `+at(30)+` + number, 'm', toString(number), if(number % 4 = 0, 'neg', 'pos'), nan FROM numbers(1000) WHERE number % 50 != 0`)
	mustQuery(t, s, `INSERT INTO fleetwatch.model_deployments (ts, model, model_version, previous_version, change, environment, actor, note)
		VALUES (`+at(-60)+`, 'm', 'v1', 'v0', 'deploy', 'prod', 'ci', '')`)
	mustQuery(t, s, `INSERT INTO fleetwatch.gpu_series (series, metric, counter, cluster, rack, node, uuid, model_name, first_seen, last_seen)
		VALUES (7, 'DCGM_FI_DEV_GPU_TEMP', 0, 'c1', 'r1', 'n1', 'GPU-a', 'H100', now(), now())`)
	mustQuery(t, s, `INSERT INTO fleetwatch.gpu_samples (ts, metric, series, value, delta)
		SELECT `+at(0)+` + number, 'DCGM_FI_DEV_GPU_TEMP', 7, 40 + number % 3, 0 FROM numbers(120)`)

	db := "fleetwatch"
	all := fleet.Window{Start: t0, End: t0.Add(1000 * time.Second)}
	q := func(sql string) string { return mustQuery(t, s, sql) }
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s:\n got  %q\n want %q", name, got, want)
		}
	}

	// Every model (no shard), the shard holding "m" (the Go twin of
	// cityHash64 agrees with current ClickHouse) and the other one.
	whole := fleet.Shard{}
	in := fleet.Shard{Index: chsql.ShardOf("m", 3), Of: 3}
	other := fleet.Shard{Index: (in.Index + 1) % 3, Of: 3}
	check("active versions", q(drift.ActiveVersionsSQL(db, all, whole)), "m\tv1\t1000")
	check("active versions of m's shard", q(drift.ActiveVersionsSQL(db, all, in)), "m\tv1\t1000")
	check("active versions of another shard", q(drift.ActiveVersionsSQL(db, all, other)), "")
	check("deployment", q(drift.DeploymentTimeSQL(db, "m", "v1")), time.Unix(t0.Unix()-60, 0).UTC().Format("2006-01-02 15:04:05"))
	check("first seen", q(drift.FirstSeenSQL(db, "m", "v1", t0.Add(-time.Hour), t0.Add(time.Hour))), t0.Format("2006-01-02 15:04:05"))

	// Quantiles: ClickHouse's quantileExact is the definition the Go
	// profile builder implements.
	levels := profile.QuantileLevels(10)
	rows := strings.Split(q(drift.NumericQuantilesSQL(db, "m", "v1", all, levels)), "\n")
	if len(rows) != 3 {
		t.Fatalf("quantiles: %q", rows)
	}
	var aValues, bValues []float64
	for n := 0; n < 1000; n++ {
		aValues = append(aValues, float64(n%10))
		if n%9 != 0 {
			bValues = append(bValues, float64(n)/100)
		}
	}
	slices.Sort(bValues)
	for _, c := range []struct {
		row    string
		name   string
		sorted []float64
	}{{rows[1], "a", aValues}, {rows[2], "b", bValues}} {
		f := strings.Split(c.row, "\t")
		want := profile.Quantiles(slices.Sorted(slices.Values(c.sorted)), levels)
		if f[0] != c.name || f[1] != strconv.Itoa(len(c.sorted)) || !slices.Equal(parseFloats(t, f[2]), want) {
			t.Errorf("quantiles of %s: %q, Go says %v", c.name, c.row, want)
		}
	}
	check("@prediction quantiles", rows[0], "@prediction\t1000\t[0,0,0,0,1,1,1,1,1]\t1")
	check("top categories", q(drift.CategoryCountsSQL(db, "m", "v1", all, 2)),
		"@prediction_class\tneg\t500\n@prediction_class\tpos\t500\nc\tx\t303\nc\ty\t303\nc\tz\t303")

	a := &profile.Profile{Feature: "a", Kind: profile.Numeric, Edges: []float64{2, 5}}
	b := &profile.Profile{Feature: "b", Kind: profile.Numeric, Edges: []float64{1, 2, 3, 4}}
	// Per feature: rows, missing, +Inf, then values >= each edge (padded
	// with inf). b = n/100 except every 9th: 800 of them >= 1, 711 >= 2, ...
	check("numeric counts", q(drift.NumericCountsSQL(db, "m", "v1", all, []*profile.Profile{a, b})),
		"1\t1000\t0\t0\t800\t500\t0\t0\n2\t1000\t112\t0\t800\t711\t622\t533")
	// 91 missing (every 11th), 303 of each letter; z is "other" here.
	c := &profile.Profile{Feature: "c", Kind: profile.Categorical, Categories: []string{"y", "x"}}
	out := &profile.Profile{Feature: profile.PredictionClassFeature, Kind: profile.Categorical}
	check("categorical counts", q(drift.CategoricalCountsSQL(db, "m", "v1", all, []*profile.Profile{c, out})),
		"1\t-1\t91\n1\t0\t303\n1\t1\t303\n1\t2\t303\n2\t0\t1000")

	// Profiles and CUSUM state round trip through their tables.
	mustQuery(t, s, `INSERT INTO fleetwatch.drift_profiles (created_at, model, model_version, feature, kind, source, ref_start, ref_end, detail, edges, categories, counts, missing)
		VALUES (`+at(1800)+`, 'm', 'v1', 'a', 'numeric', 'deployment', `+at(0)+`, `+at(1800)+`, '', [2, 5], [], [200, 300, 500], 0)`)
	check("profiles", q(storage.DriftProfilesSQL(db)), "m\tv1\ta\tnumeric\tdeployment\t2026-11-20 00:00:00\t2026-11-20 00:30:00\t\t[2,5]\t[]\t[200,300,500]\t0\t2026-11-20 00:30:00")
	mustQuery(t, s, `INSERT INTO fleetwatch.drift_scores (ts, window_start, model, model_version, feature, kind, psi, p_value, q_value, method, df, null_psi, band, n_ref, n_cur, missing_ref, missing_cur, cur_counts, cusum, cusum_run, cusum_excess, flagged)
		VALUES (`+at(600)+`, `+at(300)+`, 'm', 'v1', 'a', 'numeric', 0.01, 0.5, 1, 'chi2', 2, 0.001, 'stable', 1000, 100, 0, 0, [20, 30, 50, 0], 1.5, 2, 0.02, 0),
		       (`+at(900)+`, `+at(600)+`, 'm', 'v1', 'a', 'numeric', 0.02, 0.1, 1, 'chi2', 2, 0.001, 'stable', 1000, 100, 0, 0, [20, 30, 50, 0], 2.5, 3, 0.04, 0)`)
	check("cusum state", q(drift.CUSUMStateSQL(db, t0.Add(800*time.Second), time.Hour, in)), "m\tv1\ta\t1.5\t2\t0.02")

	// Ingest-time counts (migration 10) sum per bin inside the window; the
	// fingerprint keeps all 64 bits.
	for _, m := range schema.Migrations() {
		if m.Version == driftBinsMigration {
			for _, stmt := range m.Statements(tg) {
				mustQuery(t, s, stmt)
			}
		}
	}
	const fp = "18446744073709551615"
	mustQuery(t, s, `INSERT INTO fleetwatch.drift_bins (ts, model, model_version, feature, profile, bin, count) VALUES
		(`+at(0)+`, 'm', 'v1', 'a', `+fp+`, -1, 3), (`+at(0)+`, 'm', 'v1', 'a', `+fp+`, 0, 2),
		(`+at(60)+`, 'm', 'v1', 'a', `+fp+`, 0, 4), (`+at(1000)+`, 'm', 'v1', 'a', `+fp+`, 0, 100)`)
	check("prebinned counts", q(drift.PrebinnedSQL(db, all, in)), "m\tv1\ta\t"+fp+"\t-1\t3\nm\tv1\ta\t"+fp+"\t0\t6")

	// SPC sources. Requests are weighted by 1/sample_rate = 2.
	w := fleet.Window{Start: t0, End: t0.Add(100 * time.Second)}
	check("model metrics", q(spc.ModelMetricsSQL(db, w, in)), "m\tv1\t100\t200\t4\t[13,16,16]\t1")
	// Feature update times (migration 13): the newest reported update per
	// feature, beside the newest event carrying a value.
	for _, m := range schema.Migrations() {
		if m.Version == featureUpdateMigration {
			for _, stmt := range m.Statements(tg) {
				mustQuery(t, s, stmt)
			}
		}
	}
	mustQuery(t, s, `INSERT INTO fleetwatch.inference_events (ts, model, request_id, feature_update_names, feature_update_ts)
		VALUES (`+at(10)+`, 'm', 'u1', ['a', 'c'], [1795132800.5, 1795132000]), (`+at(20)+`, 'm', 'u2', ['a'], [1795132700])`)
	fresh := strings.Split(q(freshness.NewestSQL(db, w.Start, w.End, in)), "\n")
	slices.Sort(fresh)
	check("freshness", strings.Join(fresh, "\n"), "m\ta\tarrival\t1795132899\nm\ta\tupdate\t1795132800.5\nm\tb\tarrival\t1795132898\nm\tc\tarrival\t1795132898\nm\tc\tupdate\t1795132000")
	// 98 ok predictions with labels: the 50 odd ones right, 24 of the even.
	check("labels", q(spc.LabelMetricsSQL(db, w, t0.Add(time.Hour), in)), "m\t98\t74\t98\tnan")
	check("gpu metrics", q(spc.GPUMetricsSQL(db, fleet.Window{Start: t0, End: t0.Add(2 * time.Minute)}, []string{"DCGM_FI_DEV_GPU_TEMP"})),
		"DCGM_FI_DEV_GPU_TEMP\t7\t41\tGPU-a\tH100\t\t\tr1\tn1\tc1")
	mustQuery(t, s, `INSERT INTO fleetwatch.spc_state (ts, detector, series, metric, class, entity_type, entity, value, rules, phase, baseline, mean, sigma, zones, ewma, ewma_f, cusum_hi, cusum_lo, learn_n, learn_sum, learn_mr, learn_mr_n, last, out_run, stale)
		VALUES (`+at(60)+`, 'spc_models', 'model=m/latency_p50', 'latency_p50', 'latency', 'model', 'm', 13, 0, 1, [], 13, 0.5, 3, 13, 0.5, 0, 0, 30, 390, 14, 29, 13, 0, 0),
		       (`+at(60)+`, 'spc_models', 'model=m/latency_p50', 'latency_p50', 'latency', 'model', 'm', 13, 0, 1, [], 13, 0.5, 3, 13, 0.5, 0, 0, 30, 390, 14, 29, 13, 0, 0),
		       (`+at(60)+`, 'spc_models', 'model=m/throughput', 'throughput', 'throughput', 'model', 'm', 2, 0, 0, [2, 2.1], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, nan, 0, 0)`)
	check("spc restore", q(spc.RestoreStateSQL(db, "spc_models", t0.Add(time.Minute))),
		// SELECT *: the restore reads its columns by name.
		"2026-11-20 00:01:00\tspc_models\tmodel=m/latency_p50\tlatency_p50\tlatency\tmodel\tm\t13\t0\t1\t[]\t13\t0.5\t3\t13\t0.5\t0\t0\t30\t390\t14\t29\t13\t0\t0\n"+
			"2026-11-20 00:01:00\tspc_models\tmodel=m/throughput\tthroughput\tthroughput\tmodel\tm\t2\t0\t0\t[2,2.1]\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tnan\t0\t0")

	// The engine's ledger.
	mustQuery(t, s, `INSERT INTO fleetwatch.analyzer_windows (window_end, window_start, detector, status, detections, attempts, duration_ms, evaluated_at, error)
		VALUES (`+at(300)+`, `+at(0)+`, 'drift', 'ok', 0, 1, 3.5, now(), ''), (`+at(600)+`, `+at(300)+`, 'drift', 'skipped', 0, 5, 1, now(), 'boom')`)
	check("ledger", q(engine.LastWindowsSQL(db, []string{"drift"}, "drift")), "drift\t2026-11-20 00:10:00\t2026-11-20 00:05:00")

	// Analyzers sharing the fleet: a share resumes after its own or the
	// whole detector's last window, and the alerting owner's feed reads
	// the shares' windows, its cursors and the detections by their source
	// (migration 15).
	mustQuery(t, s, `INSERT INTO fleetwatch.analyzer_windows (window_end, window_start, detector, status, detections, attempts, duration_ms, evaluated_at, error)
		VALUES (`+at(900)+`, `+at(600)+`, 'drift@model1of3', 'ok', 1, 1, 1, now(), ''), (`+at(900)+`, `+at(600)+`, 'drift@model1of3', 'ok', 1, 1, 1, now(), ''),
		       (`+at(300)+`, `+at(0)+`, 'alerting>drift@model1of3', 'ok', 0, 1, 0, now(), '')`)
	check("share ledger", q(engine.LastWindowsSQL(db, []string{"drift@model1of3", "drift"}, "")),
		"drift\t2026-11-20 00:10:00\t2026-11-20 00:05:00\ndrift@model1of3\t2026-11-20 00:15:00\t2026-11-20 00:15:00")
	check("whole ledger with shares", q(engine.LastWindowsSQL(db, []string{"drift"}, "drift")),
		"drift\t2026-11-20 00:10:00\t2026-11-20 00:05:00\ndrift@model1of3\t2026-11-20 00:15:00\t2026-11-20 00:15:00")
	check("feed windows", q(engine.NewWindowsSQL(db, t0, []string{"drift@model1of3"}, t0.Add(300*time.Second))),
		"drift@model1of3\t2026-11-20 00:15:00\t2026-11-20 00:10:00")
	check("feed cursors", q(engine.FeedCursorsSQL(db, "alerting")), "drift@model1of3\t2026-11-20 00:05:00")
	for _, m := range schema.Migrations() {
		if m.Version == detectionSourceMigration {
			for _, stmt := range m.Statements(tg) {
				mustQuery(t, s, stmt)
			}
		}
	}
	mustQuery(t, s, `INSERT INTO fleetwatch.detections (ts, window_start, detector, class, key, model, source) VALUES
		(`+at(900)+`, `+at(600)+`, 'psi', 'covariate_drift', 'psi/m/a', 'm', 'drift@model1of3'),
		(`+at(900)+`, `+at(600)+`, 'psi', 'covariate_drift', 'psi/n/a', 'n', 'drift@model2of3')`)
	check("feed detections", q("SELECT source, key FROM ("+engine.DetectionsSQL(db, []string{"drift@model1of3"}, t0, t0.Add(900*time.Second))+")"),
		"drift@model1of3\tpsi/m/a")
	for _, sql := range []string{
		health.RowsSQL(db, all, in), health.EventsSQL(db, all, in), health.MissingSQL(db, "DCGM_FI_DEV_GPU_TEMP", time.Minute, all, in),
	} {
		q(sql) // the datacenter shard's filter parses and runs
	}
}

func parseFloats(t *testing.T, s string) []float64 {
	t.Helper()
	var out []float64
	for _, f := range strings.Split(strings.Trim(s, "[]"), ",") {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		out = append(out, v)
	}
	return out
}

// BenchmarkFleetDriftSQL runs the drift pass's binning SQL — the exact text
// the detector sends, two queries per model version — on current
// ClickHouse (chDB, in process, same 2 cores) over the fleet benchmark's
// shape: 100 models × 10,000 events × 100 numeric features and one
// categorical, generated in SQL. It shows what the pushdown costs on the
// ClickHouse users run; BenchmarkFleetDriftPass in analytics/drift measures
// the whole pass against ClickHouse 18.16.
func BenchmarkFleetDriftSQL(b *testing.B) {
	wd, _ := os.Getwd()
	lib, err := chdb.FindLibrary(wd)
	if err != nil {
		b.Skip(err)
	}
	s, err := chdb.Open(lib, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run := func(sql string) string {
		out, err := s.Query(sql, "TabSeparated")
		if err != nil {
			b.Fatalf("%v\n%.300s", err, sql)
		}
		return out
	}
	tg := schema.Target{Database: "fleetwatch", Features: schema.Modern}
	for _, stmt := range schema.Bootstrap(tg) {
		run(stmt)
	}
	for _, m := range schema.Migrations() {
		if m.Version > analyticsMigration {
			continue // later issues' migrations are tested by their own tests
		}
		for _, stmt := range m.Statements(tg) {
			run(stmt)
		}
	}
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	run(fmt.Sprintf(`INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status,
		feature_names, feature_values, cat_feature_names, cat_feature_values, prediction, prediction_class, sample_rate)
		SELECT toDateTime(%d) + intDiv(number %% 10000, 34), concat('model-', leftPad(toString(intDiv(number, 10000)), 3, '0')), 'v1',
		toString(number), 20, 'ok', arrayMap(i -> concat('f', leftPad(toString(i), 3, '0')), range(100)),
		arrayMap(i -> i + (rand(i) / 4294967296.0) * 3.4 - 1.7, range(100)), ['country'], [['de', 'fr', 'us', 'jp'][number %% 4 + 1]],
		rand(200) / 4294967296.0, if(number %% 2 = 0, 'positive', 'negative'), 1 FROM numbers(1000000)`, t0.Unix()))
	win := fleet.Window{Start: t0, End: t0.Add(5 * time.Minute)}
	var queries []string
	for m := 0; m < 100; m++ {
		model := fmt.Sprintf("model-%03d", m)
		var num []*profile.Profile
		for f := 0; f < 100; f++ {
			e := make([]float64, 9)
			for k := range e {
				e[k] = float64(f) - 1.7 + 3.4*float64(k+1)/10
			}
			num = append(num, &profile.Profile{Feature: fmt.Sprintf("f%03d", f), Kind: profile.Numeric, Edges: e})
		}
		num = append(num, &profile.Profile{Feature: profile.PredictionFeature, Kind: profile.Numeric, Edges: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}})
		cat := []*profile.Profile{{Feature: "country", Kind: profile.Categorical, Categories: []string{"de", "fr", "us", "jp"}},
			{Feature: profile.PredictionClassFeature, Kind: profile.Categorical, Categories: []string{"negative", "positive"}}}
		queries = append(queries, drift.NumericCountsSQL("fleetwatch", model, "v1", win, num), drift.CategoricalCountsSQL("fleetwatch", model, "v1", win, cat))
	}
	if got := strings.Count(run(queries[0]), "\n"); got != 101 {
		b.Fatalf("model-000: %d rows, want 101", got)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, q := range queries {
			run(q)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
}
