package dashboards

import "fmt"

// perVersion is a time series per model version over inference_events of
// the selected models: canary and baseline side by side, over the same
// minutes.
func perVersion(expr, alias string) string {
	return fmt.Sprintf(`SELECT %s AS time, concat(toString(model), ' ', toString(model_version)) AS version, %s AS %s
FROM inference_events
WHERE $__timeFilter(ts) AND %s
GROUP BY time, version
ORDER BY time, version`, bucket("ts"), expr, alias, modelFilter)
}

// deployments is the safe-rollout view (issue 20): what changed, each
// version's errors and latency beside the others', the canary judge's
// failed verdicts with their evidence, every judged signal of both
// versions (canary_verdicts), and the rollbacks.
func deployments() *board {
	b := newBoard("fleetwatch-deployments", "Fleetwatch / Deployments",
		"Is the new version safe? Deployments and canaries of the selected models, each version's traffic, error rate and p99 latency over the same minutes, the canary judge's failed verdicts with their evidence (analyzer.canary) and the rollbacks.",
		modelVar)
	b.add(sqlPanel("stat", "Deployment changes", "Deploys, canaries, promotions and rollbacks of the selected models in the range (model_deployments).", 6, 4, statLook("none"),
		`SELECT count() AS changes FROM model_deployments WHERE $__timeFilter(ts) AND `+modelFilter),
		Expect{Columns: []string{"changes"}, Rows: true})
	b.add(sqlPanel("stat", "Rollbacks", "Rollbacks of the selected models in the range: each one a version that failed.", 6, 4, statLook("none", 1),
		`SELECT countIf(change = 'rollback') AS rollbacks FROM model_deployments WHERE $__timeFilter(ts) AND `+modelFilter),
		Expect{Columns: []string{"rollbacks"}, Rows: true})
	b.add(sqlPanel("stat", "Failed canaries", "Canaries the judge failed in the range (detector canary, class canary_regression); each asked for one rollback.", 6, 4, statLook("none", 1),
		`SELECT count() AS failed FROM detections WHERE class = 'canary_regression' AND $__timeFilter(ts) AND `+modelFilter),
		Expect{Columns: []string{"failed"}, Rows: true})
	b.add(sqlPanel("stat", "Versions serving", "Distinct versions of the selected models that served requests in the range: more than one per model is a canary or a rollout under way.", 6, 4, statLook("none"),
		`SELECT uniqExact(model, model_version) AS versions FROM inference_events WHERE $__timeFilter(ts) AND `+modelFilter),
		Expect{Columns: []string{"versions"}, Rows: true})

	b.add(sqlPanel("timeseries", "Error rate by version", "Share of each version's requests whose status is not ok: a canary above its baseline over the same minutes is what the judge tests (+1 point absolute over 5 minutes by default).", 12, 8, lineLook("percentunit"),
		perVersion(errorRateExpr, "error_rate")),
		Expect{Columns: []string{"time", "version", "error_rate"}, Rows: true})
	b.add(sqlPanel("timeseries", "p99 latency by version", "Each version's 99th-percentile latency: the judge fails a canary whose share of requests slower than 1.5× the baseline's p99 is above 1%.", 12, 8, lineLook("ms"),
		perVersion("quantile(0.99)(latency_ms)", "p99_ms")),
		Expect{Columns: []string{"time", "version", "p99_ms"}, Rows: true})
	b.add(sqlPanel("timeseries", "Requests by version", "Requests per version, scaled back by edge sampling: the canary's share of the traffic sets how long a verdict takes (fleetctl canary plan).", 12, 8, lineLook("short"),
		perVersion(requestsExpr, "requests")),
		Expect{Columns: []string{"time", "version", "requests"}, Rows: true})
	b.add(sqlPanel("table", "Deployments and canaries", "Every change of the selected models in the range, newest first.", 12, 8, tableLook,
		`SELECT ts, model, change, previous_version, model_version, environment
FROM model_deployments
WHERE $__timeFilter(ts) AND `+modelFilter+`
ORDER BY ts DESC
LIMIT 200`),
		Expect{Columns: []string{"ts", "model", "change", "previous_version", "model_version", "environment"}, Rows: true})
	b.add(sqlPanel("table", "Failed canaries and their evidence", "The judge's fail verdicts: per rule the effect, its always-valid interval, the samples and the threshold; the rollback request names the baseline and the last-known-good version.", 24, 8, tableLook,
		`SELECT ts, model, entity, severity, summary, evidence
FROM detections
WHERE class = 'canary_regression' AND $__timeFilter(ts) AND `+modelFilter+`
ORDER BY ts DESC
LIMIT 100`),
		Expect{Columns: []string{"ts", "model", "entity", "severity", "summary", "evidence"}})
	b.add(sqlPanel("table", "Canary signals: canary vs baseline", "Every signal of the canaries judged in the range, at the judge's latest look (canary_verdicts): error rate, p99 ratio and gates, engagement (business outcomes), delayed-label accuracy and prediction drift, both versions over the same minutes, with the effect, the threshold and the rule's outcome; failed signals first.", 24, 8, tableLook,
		`SELECT model, version, baseline_version, last_look, verdict, signal, signal_outcome, canary, baseline, effect, unit, fail_at, canary_n, baseline_n
FROM
(
    SELECT toString(model) AS model, toString(model_version) AS version, toString(baseline_version) AS baseline_version, max(ts) AS last_look,
        toString(argMax(outcome, ts)) AS verdict, argMax(rule, ts) AS rules, argMax(rule_outcome, ts) AS outcomes,
        argMax(canary_value, ts) AS canary_values, argMax(baseline_value, ts) AS baseline_values, argMax(effect, ts) AS effects,
        argMax(unit, ts) AS units, argMax(threshold, ts) AS thresholds, argMax(canary_samples, ts) AS canary_ns, argMax(baseline_samples, ts) AS baseline_ns
    FROM canary_verdicts
    WHERE $__timeFilter(ts) AND `+modelFilter+`
    GROUP BY model, model_version, baseline_version, started
)
ARRAY JOIN rules AS signal, outcomes AS signal_outcome, canary_values AS canary, baseline_values AS baseline, effects AS effect,
    units AS unit, thresholds AS fail_at, canary_ns AS canary_n, baseline_ns AS baseline_n
ORDER BY signal_outcome = 'fail' DESC, last_look DESC, model, signal
LIMIT 200`),
		Expect{Columns: []string{"model", "version", "baseline_version", "last_look", "verdict", "signal", "signal_outcome", "canary", "baseline", "effect", "unit", "fail_at", "canary_n", "baseline_n"}})
	return b
}
