package chdb_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The canary judge's per-version SQL (issue 20 items 1 and 3) and the
// canary on-call views (migration 18) on current ClickHouse, with the
// answers they give on 18.16 (analytics/canary's tests).
func TestCanarySQLOnCurrentClickHouse(t *testing.T) {
	s := session(t)
	tg := schema.Target{Database: "fleetwatch", Features: schema.Modern}
	for _, stmt := range schema.Bootstrap(tg) {
		mustQuery(t, s, stmt)
	}
	for _, m := range schema.Migrations() {
		for _, stmt := range m.Statements(tg) {
			mustQuery(t, s, stmt)
		}
	}
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	at := fmt.Sprintf("toDateTime(%d)", t0.Unix())
	// 200 requests, one a second: even numbers v1, odd v2; 1, 51, 101 and
	// 151 fail. A success 5 s after every fifth, a miss after every third,
	// a success too late (200 s) after some; a label 30 s after each, pos
	// except every fourth.
	mustQuery(t, s, `INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status, prediction, prediction_class)
		SELECT `+at+` + number, 'm', if(number % 2 = 0, 'v1', 'v2'), toString(number), 10, if(number % 50 = 1, 'error', 'ok'), nan, 'pos' FROM numbers(200)`)
	mustQuery(t, s, `INSERT INTO fleetwatch.business_outcomes (ts, model, model_version, request_id, outcome, success, value)
		SELECT `+at+` + number + 5, 'm', '', toString(number), 'click', 1, nan FROM numbers(200) WHERE number % 5 = 0`)
	mustQuery(t, s, `INSERT INTO fleetwatch.business_outcomes (ts, model, model_version, request_id, outcome, success, value)
		SELECT `+at+` + number + 5, 'm', '', toString(number), 'click', 0, nan FROM numbers(200) WHERE number % 3 = 0 AND number % 5 != 0`)
	mustQuery(t, s, `INSERT INTO fleetwatch.business_outcomes (ts, model, model_version, request_id, outcome, success, value)
		SELECT `+at+` + number + 200, 'm', '', toString(number), 'click', 1, nan FROM numbers(200) WHERE number % 7 = 0 AND number % 5 != 0`)
	mustQuery(t, s, `INSERT INTO fleetwatch.delayed_labels (ts, model, request_id, label, label_value)
		SELECT `+at+` + number + 30, 'm', toString(number), if(number % 4 = 0, 'neg', 'pos'), nan FROM numbers(200)`)
	sorted := func(sql string) string {
		rows := strings.Split(mustQuery(t, s, sql), "\n")
		slices.Sort(rows)
		return strings.Join(rows, "\n")
	}
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s:\n got  %q\n want %q", name, got, want)
		}
	}
	end := t0.Add(400 * time.Second)
	check("engagement", sorted(canary.EngagementSQL("fleetwatch", "m", "v2", "v1", "", t0, end, 2*time.Minute)), "v1\t100\t20\nv2\t96\t20")
	check("engagement, another outcome", sorted(canary.EngagementSQL("fleetwatch", "m", "v2", "v1", "conversion", t0, end, 2*time.Minute)), "v1\t100\t0\nv2\t96\t0")
	// As of 200 s: requests before 80 s are trials, 40 and 38 of them.
	check("engagement early", sorted(canary.EngagementSQL("fleetwatch", "m", "v2", "v1", "", t0, t0.Add(200*time.Second), 2*time.Minute)), "v1\t40\t8\nv2\t38\t8")
	check("accuracy", sorted(canary.AccuracySQL("fleetwatch", "m", "v2", "v1", t0, end)), "v1\t100\t50\nv2\t96\t96")

	// Prediction bins (item 1): the baseline's deciles in the hour before
	// the start, then both versions' counts on them.
	// Feature bins the same way: x like the predictions, y missing (nan)
	// on all but 50, too few.
	mustQuery(t, s, `INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status, prediction, prediction_class, feature_names, feature_values)
		SELECT `+at+` - 200 + number, 'm', 'v1', concat('pre-', toString(number)), 10, 'ok', (number % 100) / 100, '',
		       ['x', 'y'], [(number % 100) / 100, if(number % 4 = 0, 1, nan)] FROM numbers(200)`)
	// And a categorical feature: eleven devices, device i on 20 − i of
	// the rows, the rest of the 200 missing (empty).
	mustQuery(t, s, `INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status, prediction, cat_feature_names, cat_feature_values)
		SELECT `+at+` - 200 + number, 'm', 'v1', concat('cat-', toString(number), '-', toString(r)), 10, 'ok', nan, ['device'], [d] FROM
		(SELECT number, arrayJoin(range(20 - number)) AS r, if(number < 11, concat('d', toString(number)), '') AS d FROM numbers(20))`)
	check("prediction edges", strings.ReplaceAll(mustQuery(t, s, canary.PredictionEdgesSQL("fleetwatch", "m", "v1", t0)), "\n", " "),
		"0.1 \t0.2 \t0.3 \t0.4 \t0.5 \t0.6 \t0.7 \t0.8 \t0.9")
	check("prediction counts", sorted(canary.PredictionCountsSQL("fleetwatch", "m", "v2", "v1", []float64{0.5}, t0.Add(-200*time.Second), t0)),
		"v1\t1\t0\t102\nv1\t1\t1\t98")
	check("feature keys", mustQuery(t, s, canary.FeatureKeysSQL("fleetwatch", "m", "v1", t0)), "x\t200")
	check("feature edges", strings.ReplaceAll(mustQuery(t, s, canary.FeatureEdgesSQL("fleetwatch", "m", "v1", []string{"x"}, t0)), "\n", " "),
		"x\t0.1 x\t0.2 x\t0.3 x\t0.4 x\t0.5 x\t0.6 x\t0.7 x\t0.8 x\t0.9")
	fb := &canary.FeatureBins{Names: []string{"x", "y", "device"}, Numeric: 2, Edges: [][]float64{{0.5}, {0.5, 2}, nil}, Categories: [][]string{nil, nil, {"d1", "d0"}}}
	check("feature counts", sorted(canary.FeatureCountsSQL("fleetwatch", "m", "v2", "v1", fb, t0.Add(-200*time.Second), t0)),
		"v1\t1\t0\t102\nv1\t1\t1\t98\nv1\t2\t1\t50")
	check("category keys", mustQuery(t, s, canary.CategoryKeysSQL("fleetwatch", "m", "v1", t0)), "device\t165")
	check("categories", strings.ReplaceAll(mustQuery(t, s, canary.CategoriesSQL("fleetwatch", "m", "v1", []string{"device"}, t0)), "\n", " "),
		"device\td0 device\td1 device\td2 device\td3 device\td4 device\td5 device\td6 device\td7 device\td8")
	check("category counts", sorted(canary.CategoryCountsSQL("fleetwatch", "m", "v2", "v1", fb, t0.Add(-200*time.Second), t0)),
		"v1\t1\t0\t126\nv1\t1\t1\t19\nv1\t1\t2\t20")

	// The views, on two recorded looks of one canary.
	mustQuery(t, s, `INSERT INTO fleetwatch.canary_verdicts (ts, detector, model, model_version, baseline_version, started, outcome, gate, gate_reason,
		elapsed_s, time_left_s, failed_rules, last_known_good, rule, rule_outcome, canary_value, baseline_value, effect, unit, threshold, canary_samples, baseline_samples, evidence)
		VALUES (now() - 120, 'canary', 'm', 'v2', 'v1', now() - 600, 'inconclusive', 'inconclusive', '', 480, 60, [], 'v0',
		        ['error_rate', 'engagement'], ['pass', 'inconclusive'], [0.005, 0.15], [0.005, 0.2], [0, -0.25], ['absolute', 'relative'], [0.01, -0.02], [900, 700], [2700, 2100], 'a'),
		       (now() - 60, 'canary', 'm', 'v2', 'v1', now() - 600, 'fail', 'fail', 'a rule failed', 540, 0, ['engagement'], 'v0',
		        ['error_rate', 'engagement'], ['pass', 'fail'], [0.005, 0.1], [0.005, 0.2], [0, -0.5], ['absolute', 'relative'], [0.01, -0.02], [1000, 1100], [3000, 3300], 'b')`)
	check("oncall_canary_verdicts", mustQuery(t, s, `SELECT model, version, baseline_version, verdict, gate_outcome, elapsed_s, failed, ever_failed, last_known_good, evidence_lines
		FROM fleetwatch.oncall_canary_verdicts`), "m\tv2\tv1\tfail\tfail\t540\t['engagement']\t1\tv0\tb")
	check("oncall_canary_signals", mustQuery(t, s, `SELECT model, signal, signal_outcome, canary, baseline, effect, unit, fail_at, canary_samples
		FROM fleetwatch.oncall_canary_signals`), "m\tengagement\tfail\t0.1\t0.2\t-0.5\trelative\t-0.02\t1100\nm\terror_rate\tpass\t0.005\t0.005\t0\tabsolute\t0.01\t1000")
}
